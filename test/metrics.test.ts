// berthd's Prometheus endpoint: the text format itself (no root), and a real berthd whose
// /metrics is scraped after a pod lifecycle (pull, run pod, create, start, exit, remove).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Counter, Gauge, Histogram, renderMetrics } from '../src/metrics/prometheus.js';
import { parseConfig } from '../src/config/config.js';
import { containerTestSkip, setupContainerTest, waitExited } from './helpers/containers.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The samples of a scrape: `name{labels}` → value (labels as written, in order). */
function parseScrape(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

test('the text format: HELP and TYPE, escaped labels, cumulative histogram buckets with +Inf, sum and count', () => {
  const counter = new Counter('x_total', 'Things.\nMore.');
  counter.inc({ method: 'A', code: 'OK' });
  counter.inc({ code: 'OK', method: 'A' }, 2);
  counter.inc({ method: 'say "hi"\\' });
  const histogram = new Histogram('x_seconds', 'Time.', [0.1, 1]);
  histogram.observe({ method: 'A' }, 0.05);
  histogram.observe({ method: 'A' }, 0.5);
  histogram.observe({ method: 'A' }, 3);
  const gauge = new Gauge('x_things', 'Gauge.', () => [{ labels: { state: 'ready' }, value: 2 }]);
  assert.equal(
    renderMetrics([counter, histogram, gauge]),
    [
      '# HELP x_total Things.\\nMore.',
      '# TYPE x_total counter',
      'x_total{method="A",code="OK"} 3',
      'x_total{method="say \\"hi\\"\\\\"} 1',
      '# HELP x_seconds Time.',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{method="A",le="0.1"} 1',
      'x_seconds_bucket{method="A",le="1"} 2',
      'x_seconds_bucket{method="A",le="+Inf"} 3',
      'x_seconds_sum{method="A"} 3.55',
      'x_seconds_count{method="A"} 3',
      '# HELP x_things Gauge.',
      '# TYPE x_things gauge',
      'x_things{state="ready"} 2',
      '',
    ].join('\n'),
  );
});

test('[metrics] address: off by default, HOST:PORT or [IPv6]:PORT, anything else refused naming the key', () => {
  assert.equal(parseConfig({}).metrics.address, '');
  assert.equal(parseConfig({ metrics: { address: '127.0.0.1:1338' } }).metrics.address, '127.0.0.1:1338');
  assert.equal(parseConfig({ metrics: { address: '[::1]:1338' } }).metrics.address, '[::1]:1338');
  assert.equal(parseConfig({ metrics: { address: 'localhost:9090' } }).metrics.address, 'localhost:9090');
  for (const bad of ['1338', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', 'http://127.0.0.1:1338', '::1:1338']) {
    assert.throws(() => parseConfig({ metrics: { address: bad } }), /metrics\.address must be HOST:PORT/, bad);
  }
  assert.throws(() => parseConfig({ metrics: { port: 1 } }), /unknown key "metrics\.port"/);
});

test('berthd serves /metrics: RPC counts by method and code, latency histograms, pulls, pods and containers by state', { skip: containerTestSkip }, async (t) => {
  const port = await freePort();
  const { berthd, runtime, image, podId } = await setupContainerTest(t, `[metrics]\naddress = "127.0.0.1:${port}"\n`);
  const url = `http://127.0.0.1:${port}/metrics`;
  assert.ok(berthd.logs().split('\n').some((l) => l.includes(`"url":"${url}"`) && l.includes('metrics endpoint listening')), 'the log names the endpoint');

  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'm' }, image: { image }, command: ['true'], logPath: 'm.log' } });
  const running = (
    await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'sleeper' }, image: { image }, command: ['sleep', '600'], logPath: 's.log' } })
  ).containerId;
  await runtime.startContainer({ containerId });
  await runtime.startContainer({ containerId: running });
  await waitExited(runtime, containerId);
  await assert.rejects(runtime.containerStatus({ containerId: 'no-such-container' }), /NOT_FOUND|not found/i);
  // A pull of an image the registry lacks: a failed pull.
  assert.notEqual((await berthd.ctl(['pull', image.replace(':1', ':missing')])).code, 0);
  await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'idle' }, image: { image }, command: ['true'], logPath: 'i.log' } });

  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await response.text();
  const m = parseScrape(text);
  for (const type of ['berth_grpc_requests_total counter', 'berth_grpc_request_duration_seconds histogram', 'berth_containers gauge', 'berth_pods gauge']) {
    assert.ok(text.includes(`# TYPE ${type}\n`), type);
  }
  assert.equal(m.get('berth_grpc_requests_total{method="RunPodSandbox",code="OK"}'), 1);
  assert.equal(m.get('berth_grpc_requests_total{method="CreateContainer",code="OK"}'), 3);
  assert.equal(m.get('berth_grpc_requests_total{method="StartContainer",code="OK"}'), 2);
  assert.equal(m.get('berth_grpc_requests_total{method="ContainerStatus",code="NotFound"}'), 1);
  assert.ok(m.get('berth_grpc_requests_total{method="ContainerStatus",code="OK"}')! >= 1);
  assert.equal(m.get('berth_grpc_requests_total{method="PullImage",code="OK"}'), 1);
  assert.equal(m.get('berth_grpc_requests_total{method="PullImage",code="NotFound"}'), 1);
  // Histograms: cumulative buckets up to +Inf, which equals the count.
  assert.equal(m.get('berth_grpc_request_duration_seconds_bucket{method="CreateContainer",le="+Inf"}'), 3);
  assert.equal(m.get('berth_grpc_request_duration_seconds_count{method="CreateContainer"}'), 3);
  assert.ok(m.get('berth_grpc_request_duration_seconds_sum{method="CreateContainer"}')! > 0);
  assert.ok(m.get('berth_grpc_request_duration_seconds_bucket{method="CreateContainer",le="0.005"}')! <= m.get('berth_grpc_request_duration_seconds_bucket{method="CreateContainer",le="10"}')!);
  assert.equal(m.get('berth_image_pulls_total{result="success"}'), 1);
  assert.equal(m.get('berth_image_pulls_total{result="failure"}'), 1);
  assert.ok(m.get('berth_image_pull_bytes_total')! > 1_000_000, 'the busybox layer was downloaded');
  assert.equal(m.get('berth_images'), 1);
  assert.equal(m.get('berth_containers{state="created"}'), 1);
  assert.equal(m.get('berth_containers{state="running"}'), 1);
  assert.equal(m.get('berth_containers{state="exited"}'), 1);
  assert.equal(m.get('berth_containers{state="unknown"}'), 0);
  assert.equal(m.get('berth_pods{state="ready"}'), 1);
  assert.equal(m.get('berth_pods{state="notready"}'), 0);
  assert.equal(m.get('berth_containers_oom_killed'), 0);
  assert.equal(m.get('berth_build_info{version="0.1.0"}'), 1);

  // Stopping the pod stops its containers; removing it removes them.
  await runtime.stopPodSandbox({ podSandboxId: podId }, { timeoutMs: 60_000 });
  let after = parseScrape(await (await fetch(url)).text());
  assert.equal(after.get('berth_pods{state="notready"}'), 1);
  assert.equal(after.get('berth_containers{state="running"}'), 0);
  assert.equal(after.get('berth_containers{state="exited"}')! + after.get('berth_containers{state="created"}')!, 3);
  await runtime.removePodSandbox({ podSandboxId: podId }, { timeoutMs: 60_000 });
  after = parseScrape(await (await fetch(url)).text());
  assert.equal(after.get('berth_pods{state="notready"}'), 0);
  assert.equal(after.get('berth_pods{state="ready"}'), 0);
  assert.equal(after.get('berth_containers{state="exited"}'), 0);
  assert.equal(after.get('berth_grpc_requests_total{method="RemovePodSandbox",code="OK"}'), 1);

  assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 404);
  assert.equal((await fetch(url, { method: 'POST' })).status, 405);
  // berthd stopping closes the endpoint.
  await berthd.stop();
  await assert.rejects(fetch(url));
});
