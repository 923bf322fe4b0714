/** An OCI platform, normalised (`arm64` not `aarch64`, `amd64` not `x86_64`). */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
  readonly osVersion?: string;
}
