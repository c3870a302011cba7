// Certificates and kubeconfigs for a one-node test cluster, made with Debian's openssl:
// a CA, the API server's serving certificate (127.0.0.1, localhost and the kubernetes
// service's names), client certificates (admin in system:masters, the node in
// system:nodes, the API server's kubelet client) and the service-account signing key.
// EC P-256 keys throughout: quick to make, accepted by every Kubernetes component.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './processes.js';

export interface ClusterPki {
  dir: string;
  caCert: string;
  caKey: string;
  /** The API server's serving pair. */
  server: { cert: string; key: string };
  /** Client pairs by name (admin, node, kubelet-client). */
  clients: Record<string, { cert: string; key: string }>;
  /** Service-account token signing key and its public half. */
  saKey: string;
  saPub: string;
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')}: ${r.stderr.trim()}`);
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A key and a certificate signed by the CA, with the given subject and extensions. */
async function leaf(dir: string, name: string, subject: string, extensions: string[], ca: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, `${['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...extensions].join('\n')}\n`);
  await openssl(['req', '-new', ...ecKey, '-keyout', key, '-subj', subject, '-out', csr]);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', cert]);
  return { cert, key };
}

/**
 * Makes the cluster's PKI in dir. clients maps a name to its subject
 * ("/O=system:masters/CN=admin").
 */
export async function makeClusterPki(dir: string, clients: Record<string, string>): Promise<ClusterPki> {
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  await openssl([
    'req', '-x509', ...ecKey, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=berth-e2e-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  const ca = { cert: caCert, key: caKey };
  const server = await leaf(dir, 'apiserver', '/CN=kube-apiserver', [
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
  ], ca);
  const made: Record<string, { cert: string; key: string }> = {};
  for (const [name, subject] of Object.entries(clients)) made[name] = await leaf(dir, name, subject, ['extendedKeyUsage=clientAuth'], ca);
  const saKey = join(dir, 'sa.key');
  const saPub = join(dir, 'sa.pub');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', saKey]);
  await openssl(['pkey', '-in', saKey, '-pubout', '-out', saPub]);
  return { dir, caCert, caKey, server, clients: made, saKey, saPub };
}

/** Writes a kubeconfig (JSON) for a client pair against server; returns its path. */
export async function writeKubeconfig(path: string, server: string, caCert: string, client: { cert: string; key: string }, user: string): Promise<string> {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'berth-e2e', cluster: { server, 'certificate-authority': caCert } }],
    users: [{ name: user, user: { 'client-certificate': client.cert, 'client-key': client.key } }],
    contexts: [{ name: 'berth-e2e', context: { cluster: 'berth-e2e', user } }],
    'current-context': 'berth-e2e',
  };
  await writeFile(path, JSON.stringify(config, null, 1));
  return path;
}
