// The event hub behind GetContainerEvents: bounded per subscriber, replay of what
// start-up recovery published, and the end of every stream when berthd stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventHub } from '../src/events/event-hub.js';
import { ContainerEvents } from '../src/events/container-events.js';

test('subscribers get what is published after they subscribe, in order', async () => {
  const hub = new EventHub<number>();
  hub.open();
  hub.publish(0);
  const a = hub.subscribe();
  const b = hub.subscribe();
  for (const n of [1, 2, 3]) hub.publish(n);
  assert.deepEqual([await a.next(), await a.next(), await a.next()], [1, 2, 3]);
  assert.equal(await b.next(), 1);
  b.close();
  assert.equal(await b.next(), undefined);
  assert.equal(hub.subscriberCount, 1);
  // A waiting reader wakes for the next event.
  const waiting = a.next();
  hub.publish(4);
  assert.equal(await waiting, 4);
});

test('a subscriber that falls behind is dropped, and the others keep going', async () => {
  const drops: number[] = [];
  const hub = new EventHub<number>({ capacity: 3, onDrop: (id) => drops.push(id) });
  hub.open();
  const slow = hub.subscribe();
  const fast = hub.subscribe();
  for (let n = 0; n < 10; n++) {
    hub.publish(n);
    assert.equal(await fast.next(), n);
  }
  assert.deepEqual(drops, [slow.id]);
  // What was queued goes with it: the client relists rather than trusting a gap.
  assert.equal(await slow.next(), undefined);
  assert.deepEqual(slow.endReason, { kind: 'overflow', capacity: 3 });
  assert.equal(slow.pending, 0);
  assert.equal(hub.subscriberCount, 1);
});

test('events published before open are replayed to subscribers that come within the window', async () => {
  const hub = new EventHub<string>({ capacity: 10, replayMs: 50 });
  hub.publish('exited while down');
  hub.open();
  hub.publish('live');
  const first = hub.subscribe();
  const second = hub.subscribe();
  assert.equal(await first.next(), 'exited while down');
  assert.equal(await second.next(), 'exited while down');
  await new Promise((r) => setTimeout(r, 80));
  const late = hub.subscribe();
  hub.publish('later');
  assert.equal(await late.next(), 'later');
});

test('the replay is bounded: the oldest go first', async () => {
  const hub = new EventHub<number>({ capacity: 4 });
  for (let n = 0; n < 10; n++) hub.publish(n);
  hub.open();
  const s = hub.subscribe();
  assert.equal(s.pending, 2);
  assert.deepEqual([await s.next(), await s.next()], [8, 9]);
});

test('closing the hub ends every stream, and an abort ends a wait', async () => {
  const hub = new EventHub<number>();
  hub.open();
  const s = hub.subscribe();
  const waiting = s.next();
  hub.close();
  assert.equal(await waiting, undefined);
  assert.deepEqual(s.endReason, { kind: 'hub-closed' });
  assert.deepEqual(hub.subscribe().endReason, { kind: 'hub-closed' });

  const other = new EventHub<number>();
  other.open();
  const t = other.subscribe();
  const abort = new AbortController();
  const pending = t.next(abort.signal);
  abort.abort();
  assert.equal(await pending, undefined);
});

test('container events carry copies of the pod and its containers as they were', async () => {
  type Rec = { id: string; state: string };
  const events = new ContainerEvents<Rec, Rec>();
  events.hub.open();
  const pod: Rec = { id: 'p1', state: 'ready' };
  const containers: Rec[] = [{ id: 'c1', state: 'running' }];
  events.setSnapshotSource(() => ({ pod, containers }));
  const s = events.subscribe();
  const seen: string[] = [];
  events.hub.listen((e) => seen.push(`${e.kind}:${e.containerId}`));
  events.publish('stopped', 'c1', 'p1');
  containers[0]!.state = 'exited';
  const event = (await s.next())!;
  assert.equal(event.kind, 'stopped');
  assert.equal(event.containerId, 'c1');
  assert.equal(event.pod?.id, 'p1');
  assert.equal(event.containers[0]!.state, 'running', 'a copy, not the live record');
  assert.ok(event.createdAt > 0n);
  assert.deepEqual(seen, ['stopped:c1']);
});
