// web/tickerd.d.ts stays in step with web/tickerd.js: the names it declares
// exist there, and the public names there are declared. Names only, read with
// regexes (no TypeScript compiler): exports, the client's methods, getters and
// fields, its constructor options and events, the elements' attributes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './harness.js';

const js = fs.readFileSync(path.join(ROOT, 'web/tickerd.js'), 'utf8');
const dts = fs.readFileSync(path.join(ROOT, 'web/tickerd.d.ts'), 'utf8');

/** The text of the block that opens at the first `{` after `start` (brace-matched). */
function block(text, start) {
  const i = text.indexOf(start);
  assert.ok(i >= 0, `not found: ${start}`);
  const open = text.indexOf('{', i + start.length);
  let depth = 0;
  for (let j = open; j < text.length; j++) {
    if (text[j] === '{') depth++;
    else if (text[j] === '}' && --depth === 0) return text.slice(open + 1, j);
  }
  throw new Error(`unclosed: ${start}`);
}

const all = (text, re) => new Set([...text.matchAll(re)].map((m) => m[1]));
const sorted = (set) => [...set].sort();
const missing = (names, from) => sorted(names).filter((n) => !from.has(n));

test('the exports of tickerd.js and tickerd.d.ts are the same', () => {
  const jsExports = all(js, /^export (?:const|function|class) (\w+)/gm);
  for (const m of js.matchAll(/^export \{([^}]*)\}/gm)) {
    for (const n of m[1].split(',')) jsExports.add(n.trim());
  }
  const dtsExports = all(dts, /^export declare (?:const|function|class) (\w+)/gm);
  assert.deepEqual(missing(jsExports, dtsExports), [], 'exported by tickerd.js, not declared');
  assert.deepEqual(missing(dtsExports, jsExports), [], 'declared, not exported by tickerd.js');
});

test("the client's public members are declared, and the declared ones exist", () => {
  const cls = block(js, 'export class TickerClient');
  const methods = all(cls, /^ {2}(?:get |static )?([a-zA-Z]\w*)\(/gm);
  methods.delete('constructor');
  const fields = all(cls, /this\.([a-zA-Z]\w*) = /g);
  const declared = block(dts, 'export declare class TickerClient');
  const dtsMethods = all(declared, /^ {2}([a-zA-Z]\w*)(?:<[^>]*>)?\(/gm);
  dtsMethods.delete('constructor');
  const dtsProps = all(declared, /^ {2}(?:readonly )?([a-zA-Z]\w*)\??: /gm);
  const dtsAll = new Set([...dtsMethods, ...dtsProps]);
  assert.ok(methods.size >= 10 && fields.size >= 10 && dtsAll.size >= 20, 'the regexes read the members');
  // addEventListener and removeEventListener are EventTarget's (typed here).
  const jsAll = new Set([...methods, ...fields, 'addEventListener', 'removeEventListener']);
  assert.deepEqual(missing(methods, dtsAll), [], 'public methods of TickerClient not declared');
  assert.deepEqual(missing(fields, dtsAll), [], 'public fields of TickerClient not declared');
  assert.deepEqual(missing(dtsAll, jsAll), [], 'declared members not in TickerClient');
});

test('the options and events of the client are declared', () => {
  const ctor = block(js, '  constructor(opts = {})');
  const opts = all(ctor, /opts\.(\w+)/g);
  const dtsOpts = all(block(dts, 'export interface TickerClientOptions'), /^ {2}(\w+)\??: /gm);
  assert.ok(opts.size >= 10, `options read: ${sorted(opts)}`);
  assert.deepEqual(sorted(dtsOpts), sorted(opts), 'TickerClientOptions against opts.* of the constructor');
  const events = all(block(js, 'export class TickerClient'), /new CustomEvent\('(\w+)'/g);
  const dtsEvents = all(block(dts, 'export interface TickerClientEventMap'), /^ {2}(\w+): /gm);
  assert.deepEqual(sorted(dtsEvents), sorted(events), 'TickerClientEventMap against the events dispatched');
});

test("the elements' attributes are declared", () => {
  const attrs = all(js, /getAttribute\('([\w-]+)'\)|hasAttribute\('([\w-]+)'\)/g);
  for (const m of js.matchAll(/hasAttribute\('([\w-]+)'\)/g)) attrs.add(m[1]);
  attrs.delete(undefined);
  for (const m of js.matchAll(/observedAttributes\(\) \{ return \[([^\]]*)\]/g)) {
    for (const a of m[1].matchAll(/'([\w-]+)'/g)) attrs.add(a[1]);
  }
  attrs.delete('gone'); // set by the element, not read from the page
  const dtsAttrs = all(dts, /^ {2}'?([\w-]+)'?\??: /gm);
  assert.deepEqual(missing(attrs, dtsAttrs), [], 'attributes read by the elements, not declared');
});
