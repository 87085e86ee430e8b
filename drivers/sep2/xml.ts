/**
 * The little XML IEEE 2030.5 needs here: a writer for the two resources we POST
 * (MirrorUsagePoint, MirrorMeterReading), a strict minimal parser for the three we read
 * (DeviceCapability, MirrorUsagePointList, Error) and the schema's element order. Our readings
 * become 2030.5 units and values in units.ts.
 *
 * Why no XML library: the shapes are small and fixed, and 2030.5 servers validate against the
 * XSD, where an xs:sequence makes ELEMENT ORDER part of validity. A generic object->XML library
 * emits object keys in insertion order, so the order would still have to be spelled out; here
 * every element list is emitted by walking SEP2_ORDER, so it cannot come out otherwise. The parser rejects
 * DOCTYPE (no entity expansion), unbound prefixes, mismatched tags and unknown entities.
 *
 * SEP2_ORDER is that order, taken type by type from the IEEE 2030.5-2018 schema sep.xsd (version
 * 2.1.0, namespace urn:ieee:std:2030.5:ns, as shipped with EPRI's IEEE-2030.5-Client). An
 * xs:extension appends to its base's sequence, so inherited elements come first: IdentifiedObject
 * (mRID, description, version) -> UsagePointBase (+roleFlags, serviceCategoryKind, status) ->
 * MirrorUsagePoint; IdentifiedObject -> MeterReadingBase -> MirrorMeterReading; IdentifiedObject ->
 * ReadingSetBase (+timePeriod) -> MirrorReadingSet; Resource -> ReadingBase -> Reading (+localID);
 * DeviceCapability after FunctionSetAssignmentsBase's links. Slots we never write are listed too,
 * so the test server's independent checker knows each whole sequence.
 */

export const SEP2_NS = 'urn:ieee:std:2030.5:ns';
export const SEP2_MEDIA_TYPE = 'application/sep+xml';

/** One element of an xs:sequence; `type` names the SEP2_ORDER entry of a complex element. */
export interface Slot { name: string; min: 0 | 1; max: number; type?: string }
const one = (name: string, type?: string): Slot => ({ name, min: 1, max: 1, type });
const opt = (name: string, type?: string): Slot => ({ name, min: 0, max: 1, type });
const many = (name: string, type?: string): Slot => ({ name, min: 0, max: Infinity, type });
const IDENTIFIED = [one('mRID'), opt('description'), opt('version')];

export const SEP2_ORDER: Readonly<Record<string, readonly Slot[]>> = Object.freeze({
  DeviceCapability: [
    ...['CustomerAccountListLink', 'DemandResponseProgramListLink', 'DERProgramListLink', 'FileListLink', 'MessagingProgramListLink',
      'PrepaymentListLink', 'ResponseSetListLink', 'TariffProfileListLink', 'TimeLink', 'UsagePointListLink',
      'EndDeviceListLink', 'MirrorUsagePointListLink', 'SelfDeviceLink'].map((n) => opt(n)),
  ],
  MirrorUsagePointList: [many('MirrorUsagePoint', 'MirrorUsagePoint')],
  MirrorUsagePoint: [...IDENTIFIED, one('roleFlags'), one('serviceCategoryKind'), one('status'), one('deviceLFDI'),
    many('MirrorMeterReading', 'MirrorMeterReading'), opt('postRate')],
  MirrorMeterReading: [...IDENTIFIED, opt('lastUpdateTime'), many('MirrorReadingSet', 'MirrorReadingSet'), opt('nextUpdateTime'),
    opt('Reading', 'Reading'), opt('ReadingType', 'ReadingType')],
  MirrorReadingSet: [...IDENTIFIED, one('timePeriod', 'DateTimeInterval'), many('Reading', 'Reading')],
  Reading: [opt('consumptionBlock'), opt('qualityFlags'), opt('timePeriod', 'DateTimeInterval'), opt('touTier'), opt('value'), opt('localID')],
  ReadingType: ['accumulationBehaviour', 'calorificValue', 'commodity', 'conversionFactor', 'dataQualifier', 'flowDirection', 'intervalLength',
    'kind', 'maxNumberOfIntervals', 'numberOfConsumptionBlocks', 'numberOfTouTiers', 'phase', 'powerOfTenMultiplier', 'subIntervalLength',
    'supplyLimit', 'tieredConsumptionBlocks', 'uom'].map((n) => opt(n)),
  DateTimeInterval: [one('duration'), one('start')],
  Error: [opt('maxRetryDuration'), one('reasonCode')],
});

// ---------------------------------------------------------------- writer

export interface XNode { name: string; attrs?: Record<string, string>; children?: XNode[]; text?: string }

export const escapeXml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

function render(n: XNode): string {
  const attrs = Object.entries(n.attrs ?? {}).map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join('');
  if (n.children?.length) return `<${n.name}${attrs}>${n.children.map(render).join('')}</${n.name}>`;
  return n.text === undefined ? `<${n.name}${attrs}/>` : `<${n.name}${attrs}>${escapeXml(n.text)}</${n.name}>`;
}

/** A document: the root element in the 2030.5 namespace, no prefixes. */
export function renderDocument(root: XNode): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${render({ ...root, attrs: { xmlns: SEP2_NS, ...root.attrs } })}`;
}

/** A leaf is string|number; a complex slot takes its children (max 1) or a list of them (many). */
export type Field = string | number | XNode[] | XNode[][] | undefined;

/**
 * The children of a `type` element from named fields, in SEP2_ORDER order and only that. Its
 * throws are internal: the types and field names are this module's constants and every required
 * field is always filled by the writers below, so no reading or server can trigger one (were one
 * hit, the send would fail as UPLINK_ERROR with this message).
 */
export function sequence(type: string, fields: Record<string, Field>): XNode[] {
  const slots = SEP2_ORDER[type];
  if (!slots) throw new Error(`internal: no element order for ${type}`);
  for (const k of Object.keys(fields)) if (!slots.some((s) => s.name === k)) throw new Error(`internal: ${type} has no element ${k}`);
  const out: XNode[] = [];
  for (const s of slots) {
    const v = fields[s.name];
    if (v === undefined && s.min === 1) throw new Error(`internal: ${type}.${s.name} is required`);
    if (v === undefined) continue;
    if (typeof v !== 'object') out.push({ name: s.name, text: String(v) });
    else if (s.max > 1) for (const c of v as XNode[][]) out.push({ name: s.name, children: c });
    else out.push({ name: s.name, children: v as XNode[] });
  }
  return out;
}

export const hex16 = (n: number): string => (n & 0xffff).toString(16).toUpperCase().padStart(4, '0'); // HexBinary16

export interface ReadingTypeSpec { accumulationBehaviour: number; commodity: number; dataQualifier: number; flowDirection: number;
  intervalLength: number; kind: number; phase: number; powerOfTenMultiplier: number; uom: number }
export interface ReadingSpec { start: number; duration: number; value: number; qualityFlags?: number }
export interface ReadingSetSpec { mRID: string; description?: string; start: number; duration: number; readings: ReadingSpec[] }
export interface MmrSpec { mRID: string; description?: string; sets?: ReadingSetSpec[]; reading?: ReadingSpec; readingType?: ReadingTypeSpec }
export interface MupSpec { mRID: string; description?: string; roleFlags: number; serviceCategoryKind: number; status: number;
  deviceLFDI: string; mmrs: MmrSpec[]; postRate?: number }

const interval = (start: number, duration: number) => sequence('DateTimeInterval', { duration, start });
const reading = (r: ReadingSpec) => sequence('Reading', {
  qualityFlags: r.qualityFlags === undefined ? undefined : hex16(r.qualityFlags), timePeriod: interval(r.start, r.duration), value: r.value,
});
const readingType = (t: ReadingTypeSpec) => sequence('ReadingType', { ...t });
const mmr = (m: MmrSpec) => sequence('MirrorMeterReading', {
  mRID: m.mRID, description: m.description,
  MirrorReadingSet: m.sets?.map((s) => sequence('MirrorReadingSet', {
    mRID: s.mRID, description: s.description, timePeriod: interval(s.start, s.duration), Reading: s.readings.map(reading),
  })),
  Reading: m.reading && reading(m.reading),
  ReadingType: m.readingType && readingType(m.readingType),
});

export const writeMirrorMeterReading = (m: MmrSpec): string => renderDocument({ name: 'MirrorMeterReading', children: mmr(m) });

export const writeMirrorUsagePoint = (m: MupSpec): string => renderDocument({ name: 'MirrorUsagePoint', children: sequence('MirrorUsagePoint', {
  mRID: m.mRID, description: m.description, roleFlags: hex16(m.roleFlags), serviceCategoryKind: m.serviceCategoryKind,
  status: m.status, deviceLFDI: m.deviceLFDI, MirrorMeterReading: m.mmrs.map(mmr), postRate: m.postRate,
}) });

/** Cuts a string to at most `bytes` UTF-8 bytes on a character boundary (String32 fields). */
export function truncateUtf8(s: string, bytes = 32): string {
  let out = '';
  for (const ch of s) if (Buffer.byteLength((out += ch)) > bytes) return out.slice(0, -ch.length);
  return out;
}

// ---------------------------------------------------------------- parser

export interface XElement { name: string; ns: string; attrs: Record<string, string>; children: XElement[]; text: string }

const START = /<([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/y;
const ATTR = /([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&([^;&\s]*);?/g, (all, e: string) => {
    if (!all.endsWith(';')) throw new Error(`XML: bare '&' in ${JSON.stringify(s.slice(0, 40))}`);
    if (e in ENTITIES) return ENTITIES[e];
    const n = /^#x([0-9a-fA-F]+)$/.exec(e) ? parseInt(e.slice(2), 16) : /^#\d+$/.test(e) ? parseInt(e.slice(1), 10) : NaN;
    if (!Number.isFinite(n) || n > 0x10ffff) throw new Error(`XML: unknown entity &${e};`);
    return String.fromCodePoint(n);
  });
}

/** Parses one document; throws on anything not well-formed. Element names are local names. */
export function parseXml(src: string, maxChars = 1 << 20): XElement {
  if (src.length > maxChars) throw new Error(`XML: document larger than ${maxChars} characters`);
  const stack: { el: XElement; qname: string; scope: Map<string, string> }[] = [];
  let root: XElement | undefined;
  let i = 0;
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const end = lt < 0 ? src.length : lt;
    if (end > i) {
      const t = src.slice(i, end);
      if (stack.length) stack[stack.length - 1].el.text += decode(t);
      else if (t.trim()) throw new Error('XML: text outside the root element');
    }
    if (lt < 0) break;
    i = lt;
    const skip = (open: string, close: string): boolean => { // PI, comment, CDATA
      if (!src.startsWith(open, i)) return false;
      const e = src.indexOf(close, i + open.length);
      if (e < 0 || (open === '<![CDATA[' && !stack.length)) throw new Error(`XML: bad ${open}`);
      if (open === '<![CDATA[') stack[stack.length - 1].el.text += src.slice(i + open.length, e);
      i = e + close.length;
      return true;
    };
    if (skip('<?', '?>') || skip('<!--', '-->') || skip('<![CDATA[', ']]>')) continue;
    if (src.startsWith('<!', i)) throw new Error('XML: DOCTYPE and other declarations are refused');
    if (src.startsWith('</', i)) {
      const e = src.indexOf('>', i);
      const qname = src.slice(i + 2, e < 0 ? undefined : e).trim();
      const top = stack.pop();
      if (e < 0 || !top || top.qname !== qname) throw new Error(`XML: unexpected </${qname}>`);
      i = e + 1;
      continue;
    }
    if (root && !stack.length) throw new Error('XML: a second root element');
    START.lastIndex = i;
    const m = START.exec(src);
    if (!m) throw new Error(`XML: malformed tag at ${i}`);
    i = START.lastIndex;
    const scope = new Map(stack.length ? stack[stack.length - 1].scope : []);
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(ATTR)) {
      if (a[1] in attrs) throw new Error(`XML: duplicate attribute ${a[1]}`);
      const v = decode(a[2] ?? a[3]);
      if (a[1] === 'xmlns') scope.set('', v);
      else if (a[1].startsWith('xmlns:')) scope.set(a[1].slice(6), v);
      attrs[a[1]] = v;
    }
    const [prefix, local] = m[1].includes(':') ? m[1].split(':') : ['', m[1]];
    const ns = scope.get(prefix);
    if (prefix && ns === undefined) throw new Error(`XML: unbound prefix ${prefix}`);
    const el: XElement = { name: local, ns: ns ?? '', attrs, children: [], text: '' };
    if (stack.length) stack[stack.length - 1].el.children.push(el);
    else root = el;
    if (!m[3]) stack.push({ el, qname: m[1], scope });
  }
  if (!root || stack.length) throw new Error('XML: no complete root element');
  return root;
}

export const childOf = (e: XElement, name: string): XElement | undefined => e.children.find((c) => c.name === name && c.ns === e.ns);
export const textOf = (e: XElement, name: string): string | undefined => childOf(e, name)?.text.trim();
const uint = (s: string | undefined): number | undefined => (s !== undefined && /^\d+$/.test(s.trim()) ? Number(s.trim()) : undefined);

function rootOf(xml: string, name: string): XElement {
  const r = parseXml(xml);
  if (r.name !== name || r.ns !== SEP2_NS) throw new Error(`expected ${name} in ${SEP2_NS}, got ${r.name} in ${r.ns || 'no namespace'}`);
  return r;
}

export interface DeviceCapabilityInfo { pollRate: number; mirrorUsagePointListHref?: string }
export function readDeviceCapability(xml: string): DeviceCapabilityInfo {
  const r = rootOf(xml, 'DeviceCapability');
  return { pollRate: uint(r.attrs.pollRate) ?? 900, mirrorUsagePointListHref: childOf(r, 'MirrorUsagePointListLink')?.attrs.href };
}

export interface MupInfo { mRID: string; href?: string; postRate?: number; description?: string }
export interface MupListInfo { all: number; results: number; pollRate: number; items: MupInfo[] }
export function readMirrorUsagePointList(xml: string): MupListInfo {
  const r = rootOf(xml, 'MirrorUsagePointList');
  const items = r.children.filter((c) => c.name === 'MirrorUsagePoint' && c.ns === SEP2_NS).map((c): MupInfo => ({
    mRID: (textOf(c, 'mRID') ?? '').toUpperCase(), href: c.attrs.href, postRate: uint(textOf(c, 'postRate')), description: textOf(c, 'description'),
  }));
  return { all: uint(r.attrs.all) ?? items.length, results: uint(r.attrs.results) ?? items.length, pollRate: uint(r.attrs.pollRate) ?? 900, items };
}

/** A 2030.5 Error body, if the response carries one. */
export function readError(xml: string): { reasonCode?: number; maxRetryDuration?: number } | undefined {
  let r: XElement;
  try { r = rootOf(xml, 'Error'); } catch { return undefined; }
  return { reasonCode: uint(textOf(r, 'reasonCode')), maxRetryDuration: uint(textOf(r, 'maxRetryDuration')) };
}
