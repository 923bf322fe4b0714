/** A parsed, normalised image reference (Docker's grammar). */
export interface Reference {
  /** Registry as named by users: `docker.io`, `localhost:5000`, `[::1]:5000`, `ghcr.io`. */
  readonly registry: string;
  /** Repository path inside the registry: `library/alpine`, `a/b/c`. Always lowercase. */
  readonly repository: string;
  /** Tag; `latest` when the reference named neither tag nor digest. Absent for pure digest references. */
  readonly tag?: string;
  /** `sha256:<hex>` when the reference pinned a digest. */
  readonly digest?: string;
}
