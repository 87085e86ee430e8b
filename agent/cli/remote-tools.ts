/**
 * The operator's side of remote configuration: `holdfast keypair` makes an Ed25519 signing key,
 * `holdfast config sign` and `holdfast cmd sign` print the messages to publish on config/set and
 * cmd/<name> (docs/remote.md), exactly what the tests send. They run on the operator's machine,
 * not on the gateway: no config file, no store.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { HoldfastError } from '../errors.js';
import { newKeyPair, parsePrivateKey, signCommand, signConfig } from '../remote/signing.js';
import { COMMAND_NAMES, isCommandName } from '../remote/commands.js';
import type { Command } from './commands.js';
import { noPositionals } from './args.js';

function str(v: unknown, flag: string): string {
  if (typeof v !== 'string' || v === '') throw new HoldfastError('USAGE', `${flag} is required`);
  return v;
}

function positiveInt(v: unknown, flag: string): number {
  const n = Number(str(v, flag));
  if (!Number.isSafeInteger(n) || n < 1) throw new HoldfastError('USAGE', `${flag} must be an integer >= 1`);
  return n;
}

function privateKey(file: string): ReturnType<typeof parsePrivateKey> {
  try {
    return parsePrivateKey(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new HoldfastError('USAGE', `--key ${file}: ${(e as Error).message}`);
  }
}

const SIGN_OPTS = { key: { type: 'string' }, 'key-id': { type: 'string' }, gateway: { type: 'string' } } as const;
const SIGN_HELP = '      --key FILE      Ed25519 private key (PEM, from holdfast keypair)\n      --key-id ID     its id in the gateway\'s remote.trustedKeys\n      --gateway ID    the gateway\'s gatewayId (bound into the signature)';

export const keypairCommand: Command = {
  name: 'keypair',
  usage: 'keypair --out PREFIX',
  summary: 'write an Ed25519 key pair for signing remote configs and commands',
  help: '      --out PREFIX    writes PREFIX.key (private, mode 0600) and PREFIX.pub (public, PEM)\n\nPut the public key (PEM, or the base64 line printed) in the gateway\'s remote.trustedKeys; keep the private key off the gateway.',
  options: { out: { type: 'string', short: 'o' } },
  async run(v, p) {
    noPositionals(p);
    const out = str(v.out, '--out PREFIX');
    for (const f of [`${out}.key`, `${out}.pub`]) if (existsSync(f)) throw new HoldfastError('USAGE', `${f} exists; not overwritten`);
    const k = newKeyPair();
    writeFileSync(`${out}.key`, k.privatePem, { mode: 0o600, flag: 'wx' });
    writeFileSync(`${out}.pub`, k.publicPem, { mode: 0o644, flag: 'wx' });
    console.log(`wrote ${out}.key (private, 0600) and ${out}.pub\ntrustedKeys value: ${k.publicB64}`);
    return 0;
  },
};

export const configSignCommand: Command = {
  name: 'config sign',
  usage: 'config sign --key FILE --key-id ID --version N --gateway ID CONFIG.json',
  summary: 'print the signed config/set message for a config layer (publish it to <prefix>/config/set)',
  help: `${SIGN_HELP}\n      --version N     above the version the gateway runs (see its retained config/state)\n\nCONFIG.json holds the top-level keys to set over the gateway's local file; its bytes are sent as they are.`,
  options: { ...SIGN_OPTS, version: { type: 'string' } },
  async run(v, p) {
    if (p.length !== 1) throw new HoldfastError('USAGE', 'name exactly one config file');
    const key = privateKey(str(v.key, '--key FILE'));
    const bytes = readFileSync(p[0]);
    try {
      JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      throw new HoldfastError('CONFIG_PARSE', `${p[0]} is not JSON: ${(e as Error).message}`);
    }
    console.log(JSON.stringify(signConfig(key, str(v['key-id'], '--key-id ID'), str(v.gateway, '--gateway ID'), positiveInt(v.version, '--version N'), bytes)));
    return 0;
  },
};

export const cmdSignCommand: Command = {
  name: 'cmd sign',
  usage: 'cmd sign NAME --key FILE --key-id ID --seq N --gateway ID [--args JSON]',
  summary: 'print a signed remote command message (publish it to <prefix>/cmd/NAME)',
  help: `${SIGN_HELP}\n      --seq N         above the last one the gateway took (e.g. the time in ms)\n      --args JSON     e.g. '{"uplink":"broker"}'\n\nNAME: ${COMMAND_NAMES.join(', ')}.`,
  options: { ...SIGN_OPTS, seq: { type: 'string' }, args: { type: 'string' } },
  async run(v, p) {
    if (p.length !== 1 || !isCommandName(p[0])) throw new HoldfastError('USAGE', `name one command: ${COMMAND_NAMES.join(', ')}`);
    const key = privateKey(str(v.key, '--key FILE'));
    let args: object = {};
    if (v.args !== undefined) {
      try {
        args = JSON.parse(String(v.args)) as object;
      } catch (e) {
        throw new HoldfastError('USAGE', `--args is not JSON: ${(e as Error).message}`);
      }
    }
    console.log(JSON.stringify(signCommand(key, str(v['key-id'], '--key-id ID'), str(v.gateway, '--gateway ID'), p[0], positiveInt(v.seq, '--seq N'), args)));
    return 0;
  },
};
