import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, ratio, stat } from '../../src/bench/stats.js';
import { hopMtus } from '../../src/bench/text.js';
import { schemaErrors, RESULT_SCHEMA_ID } from '../../src/bench/result.js';
import type { PathResult } from '../../src/bench/result.js';

test('median, spread and ratios of repetitions', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.deepEqual(stat([6.5, 6.1, 6.9]), { median: 6.5, min: 6.1, max: 6.9, values: [6.5, 6.1, 6.9] });
  assert.equal(ratio(6.6, 10.5), 0.6286);
  assert.equal(ratio(undefined, 10), null);
  assert.equal(ratio(5, 0), null, 'no ratio against a native path that moved nothing');
});

test('MTU by hop folds repeats, sender to receiver', () => {
  const hop = (kind: PathResult['hops'][number]['kind'], mtu: number) => ({
    host: 'n1',
    netns: 'x',
    device: 'd',
    kind,
    mtu,
  });
  const p = {
    hops: [
      hop('pod', 1450),
      hop('veth', 1450),
      hop('overlay', 1450),
      hop('underlay', 1500),
      hop('underlay', 1500),
      hop('pod', 1450),
    ],
  } as PathResult;
  assert.equal(hopMtus(p), 'pod 1450, veth 1450, overlay 1450, underlay 1500');
});

test('the schema rejects a result with a missing figure or a wrong version', () => {
  assert.ok(schemaErrors({ schema: RESULT_SCHEMA_ID }).some((e) => /required property 'paths'/.test(e)));
  assert.ok(
    schemaErrors({ schema: 'weft-bench/v0' }).some((e) => /\/schema: must be equal to constant/.test(e)),
  );
});
