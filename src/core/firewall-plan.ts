/**
 * The firewall as plain text: what `ipset restore`, `iptables-restore` and
 * `ip6tables-restore` are fed, and how to read back what the kernel has.
 *
 * Per-packet cost is constant in the number of peers: the chains hold a fixed
 * handful of rules and the active peers live in one ipset (hash:ip), so a
 * packet costs one hash lookup whether there are 2 peers or 10,000.
 */
export interface FirewallSpec {
  iface: string;
  ollamaHost: string;
  ollamaPort: number;
}

export type Family = 'ipv4' | 'ipv6';

export interface ChainNames {
  forward: string;
  input: string;
  set: string;
}

export function chainNames(iface: string): ChainNames {
  return { forward: `WGO-FWD-${iface}`, input: `WGO-IN-${iface}`, set: `wgo-peers-${iface}` };
}

/**
 * The jumps from the built-in chains: each stands exactly once, before every
 * rule that is not another wg-ollama gateway's jump (in practice: first).
 */
export function hookSpecs(iface: string): { chain: 'FORWARD' | 'INPUT'; spec: string }[] {
  const n = chainNames(iface);
  return [
    { chain: 'FORWARD', spec: `-j ${n.forward}` },
    { chain: 'INPUT', spec: `-i ${iface} -j ${n.input}` },
  ];
}

const comment = (text: string): string => `-m comment --comment "wg-ollama: ${text}"`;

/** Rules of our own chains, in the form iptables-save prints them back. */
export function chainRules(spec: FirewallSpec, family: Family): string[] {
  const { iface, ollamaHost: host, ollamaPort: port } = spec;
  const n = chainNames(iface);
  const F = `-A ${n.forward}`;
  if (family === 'ipv6') {
    return [
      `${F} -i ${iface} ${comment('no IPv6 from the tunnel')} -j DROP`,
      `${F} -o ${iface} ${comment('no IPv6 to the tunnel')} -j DROP`,
      `-A ${n.input} ${comment('nothing from the tunnel reaches the gateway')} -j DROP`,
    ];
  }
  const set = (dir: 'src' | 'dst'): string => `-m set --match-set ${n.set} ${dir}`;
  const dst = `-d ${host}/32`;
  const src = `-s ${host}/32`;
  return [
    `${F} -i ${iface} -o ${iface} ${comment('tunnel to tunnel')} -j DROP`,
    `${F} ${dst} -i ${iface} -p tcp -m tcp --dport ${port} --tcp-flags FIN,SYN,RST,ACK SYN ${set('src')} -m conntrack --ctstate NEW ${comment('peer opens ollama')} -j ACCEPT`,
    `${F} ${dst} -i ${iface} -p tcp -m tcp --dport ${port} ${set('src')} -m conntrack --ctstate ESTABLISHED ${comment('peer to ollama')} -j ACCEPT`,
    `${F} ${dst} -i ${iface} -p icmp ${set('src')} -m conntrack --ctstate RELATED ${comment('peer to ollama, icmp errors')} -j ACCEPT`,
    `${F} -i ${iface} ${comment('drop everything else from the tunnel')} -j DROP`,
    `${F} ${src} -o ${iface} -p tcp -m tcp --sport ${port} ${set('dst')} -m conntrack --ctstate ESTABLISHED ${comment('ollama replies')} -j ACCEPT`,
    `${F} ${src} -o ${iface} -p icmp ${set('dst')} -m conntrack --ctstate RELATED ${comment('ollama replies, icmp errors')} -j ACCEPT`,
    `${F} ${src} -o ${iface} -p tcp -m tcp --sport ${port} ${comment('reset flows of removed peers')} -j REJECT --reject-with tcp-reset`,
    `${F} -o ${iface} ${comment('drop everything else to the tunnel')} -j DROP`,
    // Single-box mode: the guard listens on ollamaHost on the gateway itself. Where
    // ollamaHost is another machine, no packet to it ever reaches INPUT.
    `-A ${n.input} ${dst} -p tcp -m tcp --dport ${port} ${set('src')} -m conntrack --ctstate NEW,ESTABLISHED ${comment('peer to a guard on this box')} -j ACCEPT`,
    `-A ${n.input} ${comment('nothing else from the tunnel reaches the gateway')} -j DROP`,
  ];
}

/** What iptables-save shows of the filter table: the rules of each chain in order. */
export interface SavedTable {
  chains: Set<string>;
  rules: Map<string, string[]>;
}

/** Parses the `*filter` table of `iptables-save` output (rules without counters). */
export function parseIptablesSave(text: string): SavedTable {
  const chains = new Set<string>();
  const rules = new Map<string, string[]>();
  let inFilter = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0]!);
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      const list = rules.get(chain) ?? [];
      list.push(line);
      rules.set(chain, list);
    }
  }
  return { chains, rules };
}

/** Is the table already what we want: our chains with exactly our rules, hooks first and once? */
export function firewallInSync(saved: SavedTable, spec: FirewallSpec, family: Family): boolean {
  const n = chainNames(spec.iface);
  const want = chainRules(spec, family);
  const have = [...(saved.rules.get(n.forward) ?? []), ...(saved.rules.get(n.input) ?? [])];
  if (!saved.chains.has(n.forward) || !saved.chains.has(n.input)) return false;
  if (have.length !== want.length || have.some((l, i) => l !== want[i])) return false;
  return hookSpecs(spec.iface).every(({ chain, spec: s }) => hookInPlace(saved.rules.get(chain) ?? [], `-A ${chain} ${s}`));
}

/** Another gateway's jump to its own WGO chains may stand before ours (several gateways in one box). */
const isWgoHook = (line: string): boolean => / -j WGO-(FWD|IN)-\S+$/.test(line);

/** The hook is there exactly once, and nothing but wg-ollama hooks comes before it. */
function hookInPlace(list: string[], hook: string): boolean {
  const at = list.indexOf(hook);
  return at >= 0 && list.filter((l) => l === hook).length === 1 && list.slice(0, at).every(isWgoHook);
}

/**
 * One atomic `iptables-restore --noflush` transaction: declaring our chains
 * flushes and refills them inside the same commit (never an empty or open
 * moment), misplaced or duplicate hooks are removed, and the hooks are put
 * first. Built-in chains and everybody else's rules are left alone.
 */
export function renderRestore(saved: SavedTable, spec: FirewallSpec, family: Family): string {
  const n = chainNames(spec.iface);
  const out = ['*filter', `:${n.forward} - [0:0]`, `:${n.input} - [0:0]`];
  for (const { chain, spec: s } of hookSpecs(spec.iface)) {
    const list = saved.rules.get(chain) ?? [];
    if (hookInPlace(list, `-A ${chain} ${s}`)) continue;
    for (const l of list) if (l === `-A ${chain} ${s}`) out.push(`-D ${chain} ${s}`);
    out.push(`-I ${chain} 1 ${s}`);
  }
  out.push(...chainRules(spec, family), 'COMMIT', '');
  return out.join('\n');
}

/** Removes hooks and chains (used only by `wg-ollama down`). */
export function renderTeardown(saved: SavedTable, iface: string): string | null {
  const n = chainNames(iface);
  const out = ['*filter'];
  for (const { chain, spec } of hookSpecs(iface)) {
    for (const l of saved.rules.get(chain) ?? []) if (l === `-A ${chain} ${spec}`) out.push(`-D ${chain} ${spec}`);
  }
  for (const c of [n.forward, n.input]) if (saved.chains.has(c)) out.push(`-F ${c}`);
  for (const c of [n.forward, n.input]) if (saved.chains.has(c)) out.push(`-X ${c}`);
  if (out.length === 1) return null;
  out.push('COMMIT', '');
  return out.join('\n');
}

/**
 * One entry of the peer ipset. `timeout` is the seconds left before the kernel
 * drops the entry by itself (a peer's expiry, enforced even while the daemon
 * is down), or null for a peer that does not expire.
 */
export interface SetEntry {
  name: string;
  timeout: number | null;
}

/** The ipset of active peer addresses: address → entry. */
export type PeerSet = Map<string, SetEntry>;

/** The largest timeout ipset accepts (about 24.8 days); longer expiries are refreshed. */
export const MAX_SET_TIMEOUT = 2_147_483;

/** The entry a peer should have, `expiresAt` in ms (null: never), at time `now` (ms). */
export function setEntryFor(name: string, expiresAt: number | null, now: number): SetEntry {
  if (expiresAt === null || expiresAt === undefined) return { name, timeout: null };
  return { name, timeout: Math.min(MAX_SET_TIMEOUT, Math.max(1, Math.ceil((expiresAt - now) / 1000))) };
}

/** Parses `ipset save NAME` output (`timeout 0` means permanent). */
export function parseIpsetSave(text: string, setName: string): PeerSet {
  const out: PeerSet = new Map();
  for (const line of text.split('\n')) {
    const m = /^add (\S+) (\S+)(?: timeout (\d+))?(?: comment "([^"]*)")?/.exec(line);
    if (m && m[1] === setName) {
      const t = m[3] === undefined ? 0 : Number(m[3]);
      out.set(m[2]!, { name: m[4] ?? '', timeout: t === 0 ? null : t });
    }
  }
  return out;
}

export interface SetDiff {
  add: [string, SetEntry][];
  del: string[];
}

/**
 * Timeouts count down in the kernel: an entry is re-added only when its name
 * changed, it gained or lost an expiry, or its time left is off by more than
 * a few seconds (1 % for long ones, so capped entries are refreshed now and then).
 */
function sameEntry(want: SetEntry, have: SetEntry): boolean {
  if (want.name !== have.name) return false;
  if (want.timeout === null || have.timeout === null) return want.timeout === have.timeout;
  return Math.abs(want.timeout - have.timeout) <= Math.max(5, want.timeout / 100);
}

export function diffSet(want: PeerSet, have: PeerSet): SetDiff {
  const add: [string, SetEntry][] = [];
  const del: string[] = [];
  for (const [ip, entry] of want) {
    const h = have.get(ip);
    if (!h || !sameEntry(entry, h)) add.push([ip, entry]);
  }
  for (const ip of have.keys()) if (!want.has(ip)) del.push(ip);
  return { add, del };
}

/**
 * `ipset restore` script: create the set if missing (with per-entry timeouts
 * and comments), then additions before deletions. Each line is atomic in the
 * kernel; the set is never emptied.
 */
export function renderSetRestore(setName: string, diff: SetDiff): string {
  const out = [`create ${setName} hash:ip family inet hashsize 1024 maxelem 1048576 timeout 0 comment -exist`];
  for (const [ip, e] of diff.add) out.push(`add ${setName} ${ip} timeout ${e.timeout ?? 0} comment "${e.name}" -exist`);
  for (const ip of diff.del) out.push(`del ${setName} ${ip} -exist`);
  return out.join('\n') + '\n';
}
