// OAuth 2.1 authorization server for mcpd's OAuth end-to-end tests (oidc-provider 9.13.3, no UI).
//
//   $MCPD_PEERS/node22 tests/servers/oidc_as.mjs [--port N] [--access-ttl SECONDS]
//       [--scopes "mcp:read mcp:write"] [--refresh-ttl SECONDS] [--require-resource]
//       [--require-cookies]
//
// Listens on 127.0.0.1 (port 0 = ephemeral), issuer http://127.0.0.1:PORT, and prints
// exactly one line `LISTENING http://127.0.0.1:PORT` on stdout once ready. Logs one line
// per HTTP request (method, path without query, status) to stderr.
//
// * Metadata: /.well-known/oauth-authorization-server (RFC 8414) and
//   /.well-known/openid-configuration (same document); jwks_uri /jwks.
// * Dynamic client registration at /reg, open (no initial access token). Unregistered
//   grant_types default to ["authorization_code","refresh_token"]. Public clients
//   (token_endpoint_auth_method "none") are allowed. application_type "native" clients
//   with http://127.0.0.1:PORT/... redirect URIs may use any port (RFC 8252 §7.3); "web"
//   clients (the RFC 7591 default) need an exact match.
// * PKCE S256 required for every client.
// * Resource indicators (RFC 8707): any http(s) resource on 127.0.0.1 / localhost / [::1]
//   gets a JWT access token (typ at+jwt, RS256) with aud = the resource string exactly as
//   requested (a string, not an array), scope = requested scopes ∩ --scopes, exp =
//   iat + --access-ttl. A token/refresh request without `resource` reuses the resource of
//   the authorization request (unless --require-resource: then it is invalid_target, as is
//   an authorization request without `resource`); one naming a resource that was not
//   authorized is invalid_target (the refresh token stays valid). Without any `resource`
//   the access token is opaque (oidc-provider's userinfo-only token).
// * An authorization request without `scope` gets the client's registered `scope`, or else
//   all of --scopes (RFC 6749 §3.3 default scope); unknown scopes in an authorization
//   request are dropped (in a registration request they are invalid_client_metadata).
// * Refresh tokens are issued on every authorization_code exchange (if the client may use
//   the refresh_token grant) and rotate on every use; presenting a rotated-out refresh
//   token fails with invalid_grant AND revokes the whole grant (oidc-provider's reuse
//   detection).
// * No UI: GET /auth -> 303 /interaction/UID -> (this script logs in "alice" and grants
//   exactly the requested scopes/resource) 303 /auth/UID -> 303 redirect_uri?code&state&iss.
//   oidc-provider ties those hops together with cookies; unless --require-cookies is
//   given, a hop that arrives without its cookie gets it filled in from the UID in the
//   path, so a client without a cookie jar can follow the chain too.
import { createRequire } from 'node:module';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';

// oidc-provider prints its notices with console.info (stdout): stdout is only for LISTENING.
console.info = (...a) => console.error(...a);
console.log = (...a) => console.error(...a);

const log = (msg) => process.stderr.write(`oidc_as: ${msg}\n`);
function die(msg) {
  process.stderr.write(`oidc_as: ERROR: ${msg}\n`);
  process.exit(2);
}

// ------------------------------------------------------------------ arguments
const opts = {
  port: 0, accessTtl: 3600, refreshTtl: 86400, scopes: ['mcp:read', 'mcp:write'],
  requireResource: false, requireCookies: false,
};
{
  const argv = process.argv.slice(2);
  const val = (i) => {
    if (i + 1 >= argv.length) die(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  const posInt = (s, name, allowZero = false) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) die(`${name}: bad value ${JSON.stringify(s)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '--port') { opts.port = posInt(val(i), a, true); i += 1; }
    else if (a === '--access-ttl') { opts.accessTtl = posInt(val(i), a); i += 1; }
    else if (a === '--refresh-ttl') { opts.refreshTtl = posInt(val(i), a); i += 1; }
    else if (a === '--scopes') { opts.scopes = val(i).split(/\s+/).filter(Boolean); i += 1; }
    else if (a === '--require-resource') opts.requireResource = true;
    else if (a === '--require-cookies') opts.requireCookies = true;
    else if (a === '-h' || a === '--help') {
      process.stderr.write('usage: oidc_as.mjs [--port N] [--access-ttl S] [--refresh-ttl S] [--scopes "a b"] [--require-resource] [--require-cookies]\n');
      process.exit(0);
    } else die(`unknown argument ${a}`);
  }
}

// ------------------------------------------------------------ oidc-provider
const here = path.dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCPD_PEERS || path.resolve(here, '../../.cache/peers');
const nodeProject = path.join(peers, 'node', 'package.json');
let Provider;
let errors;
try {
  if (!existsSync(nodeProject)) throw new Error(`${nodeProject} not found`);
  const resolved = createRequire(nodeProject).resolve('oidc-provider');
  ({ default: Provider, errors } = await import(pathToFileURL(resolved).href));
} catch (e) {
  die(`cannot load oidc-provider from ${path.join(peers, 'node', 'node_modules')} (${e.message}); `
    + 'run `bash tests/peers/install.sh` (and set MCPD_PEERS if the peers live elsewhere)');
}

const ACCOUNT = 'alice';
const OIDC_SCOPES = ['openid', 'offline_access'];
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function isLoopbackResource(resource) {
  const u = URL.parse(resource);
  return !!u && (u.protocol === 'http:' || u.protocol === 'https:') && LOOPBACK_HOSTS.has(u.hostname);
}

const COOKIE_KEY = randomBytes(32).toString('hex');

// Fill in oidc-provider's per-hop cookie from the UID in the path when the client has no
// jar. The cookies are signed (koa `cookies`/keygrip: NAME.sig = HMAC-SHA1(key, "NAME=VALUE")
// in base64url), so the signature cookie is added too.
function addCookieIfMissing(req, name, value) {
  const current = req.headers.cookie || '';
  if (current.split(';').some((c) => c.trim().startsWith(`${name}=`))) return;
  const sig = createHmac('sha1', COOKIE_KEY).update(`${name}=${value}`).digest('base64url');
  const add = `${name}=${value}; ${name}.sig=${sig}`;
  req.headers.cookie = current ? `${current}; ${add}` : add;
}

function buildProvider(issuer) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };

  const configuration = {
    jwks: { keys: [jwk] },
    cookies: { keys: [COOKIE_KEY] },
    scopes: [...OIDC_SCOPES, ...opts.scopes],
    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => {
          if (oneOf) return oneOf;
          if (opts.requireResource && ctx.oidc.route === 'authorization') {
            throw new errors.InvalidTarget('resource parameter is required');
          }
          return undefined;
        },
        // Token/refresh request without `resource`: reuse the granted one (or refuse).
        useGrantedResource: async () => {
          if (opts.requireResource) throw new errors.InvalidTarget('resource parameter is required');
          return true;
        },
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          if (!isLoopbackResource(resourceIndicator)) {
            throw new errors.InvalidTarget(`resource ${resourceIndicator} is not a loopback http(s) URL`);
          }
          return {
            scope: opts.scopes.join(' '),
            audience: resourceIndicator,
            accessTokenTTL: opts.accessTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Always rotate. oidc-provider consumes the old refresh token *before* it resolves the
    // `resource` of a refresh request, so a refresh failing with invalid_target would burn
    // the token (and a retry would then revoke the whole grant as a reuse): check the
    // resource here first, which runs before the token is consumed.
    rotateRefreshToken: (ctx) => {
      const requested = ctx.oidc.params.resource;
      if (requested === undefined) {
        if (opts.requireResource) throw new errors.InvalidTarget('resource parameter is required');
      } else if (Array.isArray(requested)
        || !ctx.oidc.entities.RefreshToken.resourceIndicators.has(requested)) {
        throw new errors.InvalidTarget('resource indicator is missing, or unknown');
      }
      return true;
    },
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || opts.accessTtl,
      AuthorizationCode: 60,
      RefreshToken: opts.refreshTtl,
      IdToken: 3600,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
    findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };

  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => log(`server_error: ${err.stack || err}`));
  return provider;
}

// Auto-complete an interaction: log in alice and grant exactly what was asked for.
async function finishInteraction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { params, prompt, grantId } = details;
  const grant = (grantId && await provider.Grant.find(grantId))
    || new provider.Grant({ accountId: ACCOUNT, clientId: params.client_id });

  const requested = String(params.scope || '').split(' ').filter(Boolean);
  const oidcScopes = requested.filter((s) => OIDC_SCOPES.includes(s) || opts.scopes.includes(s));
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  let resources = params.resource;
  if (resources && !Array.isArray(resources)) resources = [resources];
  for (const r of resources || []) {
    const rs = requested.filter((s) => opts.scopes.includes(s));
    if (rs.length) grant.addResourceScope(r, rs.join(' '));
  }
  const d = prompt?.details || {};
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const savedGrantId = await grant.save();

  await provider.interactionFinished(req, res, {
    login: { accountId: ACCOUNT },
    consent: { grantId: savedGrantId },
  }, { mergeWithLastSubmission: false });
}

// RFC 6749 §3.3 "default scope": an authorization request without `scope` is treated as
// one for the client's registered `scope`, or else for all of --scopes.
async function defaultScope(provider, req) {
  const url = new URL(req.url, 'http://x');
  if (url.searchParams.has('scope')) return;
  let scope = opts.scopes.join(' ');
  try {
    const client = await provider.Client.find(url.searchParams.get('client_id') || '');
    if (client?.scope) scope = client.scope;
  } catch { /* unknown client: oidc-provider reports it */ }
  url.searchParams.set('scope', scope);
  req.url = `${url.pathname}${url.search}`;
}

// ---------------------------------------------------------------- HTTP server
let provider;
let providerCallback;
const server = http.createServer(async (req, res) => {
  const pathOnly = (req.url || '/').split('?')[0];
  res.on('finish', () => log(`${req.method} ${pathOnly} -> ${res.statusCode}`));
  if (!provider) {
    res.writeHead(503).end();
    return;
  }
  const inter = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(pathOnly);
  if (inter) {
    if (req.method !== 'GET') {
      res.writeHead(405, { Allow: 'GET' }).end();
      return;
    }
    if (!opts.requireCookies) addCookieIfMissing(req, provider.cookieName('interaction'), inter[1]);
    try {
      await finishInteraction(provider, req, res);
    } catch (e) {
      log(`interaction failed: ${e.name}: ${e.message}`);
      if (!res.headersSent) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: e.error || 'invalid_request', error_description: e.error_description || e.message }));
      }
    }
    return;
  }
  if (pathOnly === '/auth' && req.method === 'GET') await defaultScope(provider, req);
  const resume = /^\/auth\/([A-Za-z0-9_-]+)$/.exec(pathOnly);
  if (resume && !opts.requireCookies) addCookieIfMissing(req, provider.cookieName('resume'), resume[1]);
  providerCallback(req, res);
});

server.on('error', (e) => die(`listen: ${e.message}`));
server.listen(opts.port, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  try {
    provider = buildProvider(issuer);
  } catch (e) {
    die(`provider setup failed: ${e.stack || e}`);
  }
  providerCallback = provider.callback();
  log(`issuer ${issuer}; scopes ${opts.scopes.join(' ')}; access ttl ${opts.accessTtl}s; `
    + `refresh ttl ${opts.refreshTtl}s; require-resource ${opts.requireResource}; require-cookies ${opts.requireCookies}`);
  process.stdout.write(`LISTENING ${issuer}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
