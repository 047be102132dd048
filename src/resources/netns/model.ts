// What cryo keeps of a network namespace (state.ts reads and rebuilds it, images.ts maps it to
// CRIU's images, verify.ts compares a restored one with it).
import type { NetLink } from './links.js';

export interface NetnsState {
  links: NetLink[];
  /** Raw RTM_NEWADDR / RTM_NEWROUTE messages (addrs.ts, routes.ts). */
  addrs: Buffer[];
  routes: Buffer[];
  routes6: Buffer[];
  sysctls: string[];
  /** `nft -j list ruleset`, or null: no rules (or no nft). */
  nft: string | null;
}
