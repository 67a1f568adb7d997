/**
 * A local certificate authority and one certificate per service, made with the `openssl`
 * binary (no cryptography of our own): what `tessera dev`, the compose init step and the
 * secured integration tests serve TLS with. Private keys are written with mode 0600 in a
 * directory of mode 0700; files that exist are kept, so a restart keeps its certificates.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';

export interface CertificateSpec {
  /** File name stem: NAME.crt and NAME.key. */
  name: string;
  /** DNS names and IP addresses the certificate is valid for. */
  hosts: string[];
}

export interface CertificateFiles {
  caFile: string;
  /** For each spec's name, its certificate and key files. */
  services: Record<string, { certFile: string; keyFile: string }>;
}

const CA_DAYS = 3650;
const LEAF_DAYS = 825;

/** Throws one clear line when the openssl binary is missing. */
export function checkOpenssl(): string {
  try {
    return execFileSync('openssl', ['version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    throw new Error('the openssl binary is needed to create certificates; install it (e.g. apt-get install openssl) or pass --tls-* files');
  }
}

export function makeCertificates(dir: string, specs: CertificateSpec[]): CertificateFiles {
  checkOpenssl();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const caFile = path.join(dir, 'ca.crt');
  const caKey = path.join(dir, 'ca.key');
  if (!existsSync(caFile) || !existsSync(caKey)) {
    openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', caKey, '-out', caFile, '-days', String(CA_DAYS), '-subj', '/CN=Tessera local CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    chmodSync(caKey, 0o600);
  }
  const services: CertificateFiles['services'] = {};
  for (const spec of specs) {
    if (!/^[A-Za-z0-9._-]+$/.test(spec.name)) throw new Error(`certificate name ${JSON.stringify(spec.name)} is not a plain file name`);
    const certFile = path.join(dir, `${spec.name}.crt`);
    const keyFile = path.join(dir, `${spec.name}.key`);
    services[spec.name] = { certFile, keyFile };
    if (existsSync(certFile) && existsSync(keyFile)) continue;
    const csr = path.join(dir, `${spec.name}.csr`);
    const ext = path.join(dir, `${spec.name}.ext`);
    const names = spec.hosts.map((host) => (isIP(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
    writeFileSync(
      ext,
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${names}\n`,
    );
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${spec.name}`]);
    chmodSync(keyFile, 0o600);
    openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', String(LEAF_DAYS), '-extfile', ext]);
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  return { caFile, services };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim().split('\n')[0];
    throw new Error(`openssl ${args[0]} failed: ${stderr}`);
  }
}
