/** vmimg/registry: a registry client (auth, mirrors, retries; blobs opened by range for the store) and its parts. */
export {
  RegistryClient,
  type RegistryClientOptions,
  type RepositoryRef,
  type CallOptions,
  type FetchedManifest,
  type BlobReadOptions,
  type OpenedBlob,
  type ApiAnswer,
  type PingResult,
} from './client.js';
export { registryEndpoints, plainHttpAllowed, type RegistryEndpoint, type HostOptions, type MirrorSpec, type HostCapabilities } from './hosts.js';
export { credentialChain, credentialKeyOf, type Credential, type CredentialInput, type CredentialLookup, type CredentialOptions } from './credentials.js';
export { parseWWWAuthenticate, saysTokenExpired, type Challenge } from './auth.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy, type RetryNotice, type StallNotice, type NetworkNotice } from '../util/retry.js';
export { DEFAULT_THROUGHPUT, type ThroughputRule } from '../util/throughput.js';
export { redactUrl } from './http-errors.js';
export { parseReference, formatReference, familiarName, apiHost, isLoopbackHost, type Reference } from '../reference/index.js';
export type { Descriptor } from '../manifest/types.js';
