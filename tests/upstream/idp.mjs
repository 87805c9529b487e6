// The real upstream OpenID Provider of Federa's end-to-end tests: oidc-provider
// (see package.json for the pinned version) with non-interactive sign-in.
//
//   IDP_CLIENTS='[{"client_id":"federa","client_secret":"s3cret","redirect_uris":["http://127.0.0.1:1/cb"]}]' \
//   IDP_PORT=0 node tests/upstream/idp.mjs
//
// Prints exactly one line, `LISTENING <issuer>`, to stdout once it serves, and
// exits when its stdin closes. Everything else goes to stderr; oidc-provider's
// development notices are dropped unless IDP_DEBUG is set. See README.md.

import * as http from 'node:http';
import * as crypto from 'node:crypto';

// stdout carries only the LISTENING line: oidc-provider prints its notices with
// console.info (stdout) and its warnings with console.warn.
const debug = Boolean(process.env.IDP_DEBUG);
const toStderr = (...args) => {
  if (!debug && typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) return;
  console.error(...args);
};
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;

// Imported after the console is redirected (static imports would run first).
const { default: Provider } = await import('oidc-provider');

// Exit when the test runner goes away (its end of our stdin closes).
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

function fail(message) {
  console.error(`idp.mjs: ${message}`);
  process.exit(2);
}

let clients = [];
try {
  clients = JSON.parse(process.env.IDP_CLIENTS || '[]');
} catch (err) {
  fail(`IDP_CLIENTS is not JSON: ${err.message}`);
}
if (!Array.isArray(clients)) fail('IDP_CLIENTS must be a JSON array of client metadata');

const requestedPort = Number(process.env.IDP_PORT || 0);
if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) fail(`IDP_PORT is not a port: ${process.env.IDP_PORT}`);

// Accounts: any login name; the accountId (and so the subject, also in
// back-channel logout tokens) is "sub-" + name.
const SUB_PREFIX = 'sub-';
const capitalize = (s) => s.charAt(0).toUpperCase() + s.slice(1);

// A login name "name~g1,g2" is the account "name" (same subject) whose
// `groups` claim is [g1, g2] for this sign-in; otherwise `groups` is
// ["staff"]. With `address` (nested), `groups` comes with the profile scope.
function account(accountId) {
  const full = accountId.startsWith(SUB_PREFIX) ? accountId.slice(SUB_PREFIX.length) : accountId;
  const [name, groupSpec] = full.split('~');
  const givenName = capitalize(name);
  return {
    accountId,
    async claims() {
      return {
        sub: groupSpec === undefined ? accountId : SUB_PREFIX + name,
        preferred_username: name,
        name: `${givenName} Upstream`,
        given_name: givenName,
        family_name: 'Upstream',
        email: `${name}@upstream.test`,
        email_verified: true,
        address: { locality: 'Lyon', country: 'FR', 'postal.code': '69001' },
        groups: groupSpec === undefined ? ['staff'] : groupSpec.split(',').filter(Boolean),
      };
    },
  };
}

// The sign-out confirmation page submits itself, signing out of everything
// (like the form_post pages a browser's script submits).
async function logoutSource(ctx, form) {
  const autoForm = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  ctx.type = 'html';
  ctx.body = `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Signing out</title>
<script>document.addEventListener('DOMContentLoaded', function () { document.forms[0].submit() });</script>
</head>
<body>${autoForm}</body>
</html>`;
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><p>signed out of the upstream</p></body></html>';
}

// A signing key of its own for every instance (oidc-provider's development
// key is the same everywhere), so a relying party that checks an ID token
// against the wrong upstream's keys fails.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `rsa-${crypto.randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

let provider;

// Test controls of tests/upstream_keys.rs (self-contained):
// - POST /__test/rotate: a new RSA signing key; the JWKS publishes the new key
//   and the old ones, and tokens are signed with the new one from then on
//   (oidc-provider's keys are fixed at construction, so the Provider is built
//   again with the same configuration and the new key first, which it picks
//   for signing). Answers {"kid": "<new kid>"}.
// - The resource indicator urn:federa:test-api (scope "api") gets access
//   tokens in the JWT format, signed with the signing key, when an
//   authorization request names it (resource=...).
const { errors: oidcErrors } = await import('oidc-provider');
const TEST_API = 'urn:federa:test-api';
let testConfig;
function withTestControls(config) {
  testConfig = {
    ...config,
    features: {
      ...config.features,
      resourceIndicators: {
        enabled: true,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== TEST_API) throw new oidcErrors.InvalidTarget();
          return { scope: 'api', audience: TEST_API, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
  };
  return testConfig;
}
function rotateSigningKey(res) {
  const { privateKey: next } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = { ...next.export({ format: 'jwk' }), kid: `rsa-${crypto.randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
  testConfig = { ...testConfig, jwks: { keys: [key, ...testConfig.jwks.keys] } };
  const { port } = server.address();
  provider = new Provider(`http://127.0.0.1:${port}`, testConfig);
  provider.on('server_error', (ctx, err) => console.error(`idp.mjs: server_error: ${err.stack || err}`));
  callback = provider.callback();
  console.error(`idp.mjs: signing key rotated to ${key.kid}`);
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: key.kid }));
}

// Finishes an interaction at once: login as the login_hint (default alice, and
// "denied" refuses), consent to whatever is asked.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    const hint = typeof params.login_hint === 'string' && params.login_hint ? params.login_hint : 'alice';
    if (hint === 'denied') {
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'the user refused' },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    result = { login: { accountId: SUB_PREFIX + hint } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    result = { consent: details.grantId ? {} : { grantId } };
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// Server-to-server logout, as a relying party with Keycloak's
// `backchannelSupported` calls it: GET /backchannel/session/end?id_token_hint=..
// ends the session whose `sid` the (verified) hint names, with no browser and
// no cookie (oidc-provider's own end_session needs the browser's session).
// Sessions are found by the sids they handed out, recorded at each save.
const sessionsBySid = new Map();

async function backchannelEnd(req, res) {
  const hint = new URL(req.url, 'http://idp').searchParams.get('id_token_hint');
  try {
    if (!hint) throw new Error('id_token_hint is missing');
    const [, payload] = hint.split('.');
    const { aud } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const client = await provider.Client.find(String(Array.isArray(aud) ? aud[0] : aud));
    if (!client) throw new Error('unknown audience');
    const { payload: claims } = await provider.IdToken.validate(hint, client);
    const id = sessionsBySid.get(claims.sid);
    const session = id && await provider.Session.find(id);
    if (session) await session.destroy();
    sessionsBySid.delete(claims.sid);
    if (debug) console.error(`idp.mjs: back-channel end of sid ${claims.sid}: ${session ? 'ended' : 'no session'}`);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(session ? 'ended' : 'no session');
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`backchannel logout refused: ${err.message}`);
  }
}

let callback;

const server = http.createServer((req, res) => {
  if (!provider) {
    res.writeHead(503).end();
    return;
  }
  const path = req.url.split('?')[0];
  if (req.method === 'POST' && path === '/__test/rotate') {
    rotateSigningKey(res);
    return;
  }
  if (req.method === 'GET' && /^\/interaction\/[^/]+$/.test(path)) {
    interaction(req, res).catch((err) => {
      console.error(`idp.mjs: interaction failed: ${err.stack || err}`);
      if (!res.headersSent) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${err.message}`);
      }
    });
    return;
  }
  if (req.method === 'GET' && path === '/backchannel/session/end') {
    backchannelEnd(req, res);
    return;
  }
  callback(req, res);
});

server.on('error', (err) => fail(`cannot listen: ${err.message}`));

server.listen(requestedPort, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  try {
    provider = new Provider(issuer, withTestControls({
      clients,
      jwks: { keys: [signingKey] },
      findAccount: async (ctx, id) => account(id),
      claims: {
        openid: ['sub'],
        profile: ['preferred_username', 'name', 'given_name', 'family_name', 'address', 'groups'],
        email: ['email', 'email_verified'],
      },
      scopes: ['openid', 'offline_access', 'profile', 'email'],
      conformIdTokenClaims: false,
      // A client may ask for short-lived access tokens (`access_token_ttl`,
      // seconds), so that tests see them expire and get refreshed.
      extraClientMetadata: { properties: ['access_token_ttl'] },
      ttl: {
        AccessToken: (ctx, token, client) =>
          Number(client?.metadata().access_token_ttl) || token.resourceServer?.accessTokenTTL || 60 * 60,
      },
      clockTolerance: 5,
      pkce: { methods: ['S256'], required: () => false },
      interactions: { url: async (ctx, i) => `/interaction/${i.uid}` },
      cookies: {
        // Browsers keep cookies per host, not per port: names of its own keep
        // two upstreams (and Federa) on 127.0.0.1 from overwriting each other.
        names: {
          session: `op${port}_session`,
          interaction: `op${port}_interaction`,
          resume: `op${port}_interaction_resume`,
        },
        keys: [crypto.randomBytes(32).toString('hex')],
        long: { httpOnly: true, sameSite: 'lax', signed: true },
        short: { httpOnly: true, sameSite: 'lax', signed: true },
      },
      features: {
        devInteractions: { enabled: false },
        rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
        backchannelLogout: { enabled: true },
        introspection: { enabled: true, allowedPolicy: async () => true },
        revocation: { enabled: true },
        userinfo: { enabled: true },
      },
      renderError: async (ctx, out) => {
        ctx.type = 'json';
        ctx.body = out;
      },
    }));
  } catch (err) {
    fail(`cannot configure oidc-provider: ${err.stack || err}`);
  }
  provider.on('server_error', (ctx, err) => console.error(`idp.mjs: server_error: ${err.stack || err}`));
  provider.on('backchannel.error', (ctx, err, client) => {
    console.error(`idp.mjs: back-channel logout to ${client.clientId} failed: ${err.message}`);
  });
  const save = provider.Session.prototype.save;
  provider.Session.prototype.save = async function saveAndRecord(...args) {
    const saved = await save.apply(this, args);
    for (const { sid } of Object.values(this.authorizations || {})) {
      if (sid) sessionsBySid.set(sid, this.id);
    }
    return saved;
  };
  callback = provider.callback();
  // oidc-provider checks static client metadata on first use: check it now,
  // so a bad IDP_CLIENTS fails the start rather than a sign-in.
  Promise.all(clients.map(async (c) => {
    try {
      if (!(await provider.Client.find(String(c.client_id)))) throw new Error('not found');
    } catch (err) {
      throw new Error(`client ${JSON.stringify(c.client_id)}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
    }
  })).then(
    () => process.stdout.write(`LISTENING ${issuer}\n`),
    (err) => fail(`invalid IDP_CLIENTS: ${err.message}`),
  );
});
