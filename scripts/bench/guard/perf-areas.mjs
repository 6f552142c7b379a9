#!/usr/bin/env node
// Groups `perf report --sort dso,sym` output (stdin) into areas: the kernel, OpenSSL (TLS and
// crypto, linked into node), V8 (builtins, runtime, garbage collection), Node's C++, the guard's
// own JavaScript (dist/), Node's JavaScript (node:*), libc, SQLite. Used by perf.sh.
import { createInterface } from 'node:readline';

const RULES = [
  ['kernel (syscalls, TCP over loopback, scheduling)', (dso) => dso.includes('kernel')],
  ['the guard’s JavaScript (dist/)', (dso, sym) => sym.includes('/dist/')],
  ['dependencies’ JavaScript (node_modules)', (dso, sym) => sym.includes('node_modules')],
  ['Node’s JavaScript (node:*)', (dso, sym) => /JS:.*node:/.test(sym)],
  ['other JIT code', (dso) => dso.startsWith('[JIT]')],
  ['OpenSSL: TLS and crypto', (dso, sym) => /ssl|SSL|EVP_|aes|AES|gcm|GCM|sha|SHA|ossl|BN_|bn_|ecp_|x25519|X509|OPENSSL|CRYPTO_|ChaCha|chacha|poly1305|rsaz|ASN1|asn1|tls1?_|RAND_|OBJ_|BIO_|HMAC|hmac|HKDF|EC_|ec_GF|ERR_/.test(sym)],
  ['V8: garbage collection', (dso, sym) => /Scaveng|Mark(ing|Compact)|Sweep|Heap::|GC|Evacuat|RecordWrite/.test(sym)],
  ['V8: builtins and runtime', (dso, sym) => /Builtins_|v8::|Runtime_|Builtin/.test(sym)],
  ['Node’s C++ (libuv, streams, http parser)', (dso, sym) => /node::|uv_|uv__|llhttp|nghttp/.test(sym)],
  ['libc (malloc, memcpy)', (dso) => dso.startsWith('libc')],
  ['SQLite (the spool thread)', (dso) => dso.includes('sqlite')],
];
const areas = new Map();
let total = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const m = /^\s*([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*)$/.exec(line);
  if (!m) continue;
  const [pct, dso, sym] = [Number(m[1]), m[2], m[3]];
  total += pct;
  const name = RULES.find(([, f]) => f(dso, sym))?.[0] ?? `other (${dso})`;
  areas.set(name, (areas.get(name) ?? 0) + pct);
}
console.log('| area | share of the guard’s on-CPU samples |\n|---|---|');
for (const [a, p] of [...areas].sort((x, y) => y[1] - x[1])) console.log(`| ${a} | ${p.toFixed(1)} % |`);
console.log(`| (symbols counted) | ${total.toFixed(1)} % |`);
