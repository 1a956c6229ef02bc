// A stand-in for Sign in with Apple's token endpoint and key set, for Plinth's Apple tests.
// It signs real RS256 id_tokens with an RSA key made at start-up and publishes the public
// half as a JSON Web Key Set, so Plinth's signature, issuer, audience and expiry checks run
// for real. Only Node's standard library is used.
// Usage: node apple_provider.mjs CLIENT_ID (it prints `APPLE ready <base URL>` on a port the
// kernel picked)
// The code sent to /auth/token picks the id_token: "<kind>:<login>", where kind is one of
// ok, expired, audience, issuer, forged, none; the login names the user (sub "apple-<login>",
// email "<login>@apple.test", email_verified "true" as Apple sends it: a string).
import http from 'node:http';
import crypto from 'node:crypto';

const [clientId] = process.argv.slice(2);
const KID = 'test-key-1';
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
// Another key under the same key id: a token it signs must not verify.
const { privateKey: otherKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = publicKey.export({ format: 'jwk' });

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

function token(kind, login) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: kind === 'issuer' ? 'https://evil.example' : 'https://appleid.apple.com',
    aud: kind === 'audience' ? 'someone.else' : clientId,
    exp: kind === 'expired' ? now - 3600 : now + 600,
    iat: now - 5,
    sub: `apple-${login}`,
    email: `${login}@apple.test`,
    email_verified: 'true',
    is_private_email: 'false',
  };
  if (kind === 'none') {
    return `${b64({ alg: 'none', kid: KID })}.${b64(claims)}.`;
  }
  const input = `${b64({ alg: 'RS256', kid: KID, typ: 'JWT' })}.${b64(claims)}`;
  const key = kind === 'forged' ? otherKey : privateKey;
  const signature = crypto.sign('sha256', Buffer.from(input), key).toString('base64url');
  return `${input}.${signature}`;
}

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/auth/keys') {
    return send(200, { keys: [{ ...jwk, kid: KID, use: 'sig', alg: 'RS256' }] });
  }
  if (req.method === 'POST' && req.url === '/auth/token') {
    let raw = '';
    req.on('data', (chunk) => { raw += chunk; });
    req.on('end', () => {
      const form = new URLSearchParams(raw);
      const [kind, login] = (form.get('code') || '').split(':');
      if (form.get('client_id') !== clientId || !login || !form.get('code_verifier')) {
        return send(400, { error: 'invalid_grant' });
      }
      send(200, {
        access_token: `access-${login}`,
        token_type: 'Bearer',
        expires_in: 3600,
        refresh_token: `refresh-${login}`,
        id_token: token(kind, login),
      });
    });
    return undefined;
  }
  return send(404, { error: 'not_found' });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`APPLE ready http://127.0.0.1:${server.address().port}`);
});
