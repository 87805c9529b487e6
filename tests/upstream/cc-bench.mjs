// node oidc-provider serving the client_credentials grant with JWT access
// tokens (RS256), one cluster worker per core: the peer `make bench` runs
// side by side with Federa's client_credentials grant (bench/src/grants.rs).
//
//   CC_CLIENT_ID=bench CC_CLIENT_SECRET=s3cret CC_WORKERS=2 node tests/upstream/cc-bench.mjs
//
// Prints exactly one line, `LISTENING <issuer>`, once every worker serves, and
// exits when its stdin closes. Everything else goes to stderr.

import cluster from 'node:cluster';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as os from 'node:os';

const debug = Boolean(process.env.IDP_DEBUG);
const toStderr = (...args) => {
  if (!debug && typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) return;
  console.error(...args);
};
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;

function fail(message) {
  console.error(`cc-bench.mjs: ${message}`);
  process.exit(2);
}

/// The resource (RFC 8707) every token is for; its format is a JWT.
const RESOURCE = 'https://api.bench.test/';
const SCOPE = 'api';

if (cluster.isPrimary) {
  const clientId = process.env.CC_CLIENT_ID || fail('CC_CLIENT_ID is not set');
  const clientSecret = process.env.CC_CLIENT_SECRET || fail('CC_CLIENT_SECRET is not set');
  const workers = Number(process.env.CC_WORKERS || os.availableParallelism());
  if (!Number.isInteger(workers) || workers < 1) fail(`CC_WORKERS is not a count: ${process.env.CC_WORKERS}`);

  // One key for every worker, so that a token from any of them verifies
  // against the one JWK Set.
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = { ...privateKey.export({ format: 'jwk' }), kid: `cc-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };

  // A free port, chosen here so that the issuer is known before the workers start.
  const probe = http.createServer();
  probe.listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => {
      const env = { CC_PORT: String(port), CC_KEY: JSON.stringify(key), CC_CLIENT_ID: clientId, CC_CLIENT_SECRET: clientSecret };
      let ready = 0;
      for (let i = 0; i < workers; i += 1) {
        const worker = cluster.fork(env);
        worker.on('message', (m) => {
          if (m === 'listening') {
            ready += 1;
            if (ready === workers) process.stdout.write(`LISTENING http://127.0.0.1:${port}\n`);
          }
        });
      }
      cluster.on('exit', (w, code) => {
        if (code !== 0 && code !== null) fail(`a worker exited with ${code}`);
      });
    });
  });

  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
} else {
  const { default: Provider } = await import('oidc-provider');
  const port = Number(process.env.CC_PORT);
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.CC_CLIENT_ID,
      client_secret: process.env.CC_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [JSON.parse(process.env.CC_KEY)] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: SCOPE,
          audience: RESOURCE,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error(`cc-bench.mjs: server_error: ${err.stack || err}`));
  const server = http.createServer(provider.callback());
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => process.send('listening'));
}
