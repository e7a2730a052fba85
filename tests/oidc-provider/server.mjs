// A real OpenID Connect provider (panva's oidc-provider) on 127.0.0.1 for
// Lyceum's sign-in tests. Started by .ci/run; usage: node server.mjs PORT
//
// - Clients register themselves (RFC 7591) at /reg, so each test brings its
//   own redirect URI and client secret.
// - /interaction/<uid> is a plain login form: whoever types an email address
//   is signed in as that person (a test provider, never a real one). The
//   account carries more than name and email (birthdate, phone, picture,
//   locale) so tests can prove Lyceum takes only name and email.
// - POST /__test/forge {client_id, kind} makes the next token response for that
//   client carry a forged or defective ID token, standing in for an attacker
//   on the wire: kinds foreign-key, tampered, none, wrong-audience, expired,
//   wrong-issuer.
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.OIDC_PORT || 25261);
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'lyceum-test-1', alg: 'RS256', use: 'sig' };
const attacker = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

// accountId → what the person typed at the login form.
const accounts = new Map();
// client_id → the kind of forgery its next token response carries.
const forgeries = new Map();
const KINDS = new Set(['foreign-key', 'tampered', 'none', 'wrong-audience', 'expired', 'wrong-issuer']);

const provider = new Provider(issuer, {
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'phone', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'birthdate', 'picture', 'locale'],
    phone: ['phone_number'],
  },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // A test provider: every client gets what it asks for, no consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const person = accounts.get(id);
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        const [given, ...rest] = person.name.split(' ');
        return {
          sub: id,
          email: person.email,
          email_verified: person.verified,
          name: person.name,
          given_name: given,
          family_name: rest.join(' '),
          birthdate: '1990-04-01',
          phone_number: '+44 20 7946 0123',
          picture: `${issuer}/pictures/${id}.jpg`,
          locale: 'en-GB',
        };
      },
    };
  },
});

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function forge(idToken, kind) {
  const [h, p, s] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  const sign = (hdr, body, key) => {
    const input = `${b64(hdr)}.${b64(body)}`;
    return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };
  switch (kind) {
    case 'foreign-key':
      return sign(header, payload, attacker);
    case 'tampered':
      return `${h}.${b64({ ...payload, email: 'attacker@example.org', name: 'Mallory' })}.${s}`;
    case 'none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`;
    case 'wrong-audience':
      return sign(header, { ...payload, aud: 'someone-else' }, privateKey);
    case 'expired':
      return sign(header, { ...payload, iat: now - 7200, exp: now - 3600 }, privateKey);
    case 'wrong-issuer':
      return sign(header, { ...payload, iss: 'https://evil.example' }, privateKey);
    default:
      throw new Error(`unknown forgery ${kind}`);
  }
}

provider.use(async (ctx, next) => {
  await next();
  const clientId = ctx.oidc?.client?.clientId;
  if (ctx.path === '/token' && ctx.status === 200 && clientId && forgeries.has(clientId) && ctx.body?.id_token) {
    const kind = forgeries.get(clientId);
    forgeries.delete(clientId);
    ctx.body = { ...ctx.body, id_token: forge(ctx.body.id_token, kind) };
  }
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function loginPage(uid, clientId) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test ID: sign in</title></head>
<body><main><h1>Test ID</h1><p>Sign in to continue to ${escape(clientId)}.</p>
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Email <input type="email" name="email" id="email" required autofocus></label>
<label>Name <input type="text" name="name" id="name" value="Ada Lovelace"></label>
<label><input type="checkbox" name="email_verified" id="email_verified" checked> Email verified</label>
<button type="submit" id="continue">Continue</button>
</form></main></body></html>`;
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    const interaction = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (interaction && req.method === 'GET' && !interaction[2]) {
      const details = await provider.interactionDetails(req, res);
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(loginPage(details.uid, details.params.client_id));
    } else if (interaction && req.method === 'POST' && interaction[2]) {
      await provider.interactionDetails(req, res);
      const form = new URLSearchParams(await body(req));
      const email = (form.get('email') || '').trim().toLowerCase();
      if (!email) {
        res.statusCode = 400;
        res.end('email required');
        return;
      }
      const accountId = `acc-${crypto.createHash('sha256').update(email).digest('hex').slice(0, 20)}`;
      accounts.set(accountId, {
        email,
        name: (form.get('name') || '').trim() || 'Ada Lovelace',
        verified: form.get('email_verified') === 'on',
      });
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    } else if (url.pathname === '/__test/forge' && req.method === 'POST') {
      const { client_id: clientId, kind } = JSON.parse(await body(req));
      if (!KINDS.has(kind)) {
        res.statusCode = 400;
        res.end(`unknown forgery ${kind}`);
        return;
      }
      forgeries.set(clientId, kind);
      res.statusCode = 204;
      res.end();
    } else {
      callback(req, res);
    }
  } catch (err) {
    res.statusCode = err.statusCode || 500;
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(`${err.name}: ${err.message}`);
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`test OpenID Connect provider at ${issuer}`);
});
