/** Host-name helpers the registry code needs, on top of the reference module's. */
import { apiHost, isLoopbackHost } from '../reference/index.js';

const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** True for Docker Hub under any of its names. */
export function isDockerHub(registry: string): boolean {
  return DOCKER_HUB_NAMES.has(registry.toLowerCase());
}

/** The host that serves the API for a registry name: `docker.io` → `registry-1.docker.io`. */
export function originHost(registry: string): string {
  return isDockerHub(registry) ? 'registry-1.docker.io' : apiHost(registry.toLowerCase());
}

/** Loopback: 127.0.0.0/8, ::1, localhost (with or without a port). */
export const isLoopback = isLoopbackHost;
