// A real OpenID Connect provider (node-oidc-provider) for Plinth's OAuth2 tests.
// Usage: node provider.mjs CLIENT_ID CLIENT_SECRET
// It listens on a loopback port the kernel picks and prints `OIDC ready <issuer>` once it
// serves, so no other process can take the port between choosing and binding it.
import http from 'node:http';
import Provider from 'oidc-provider';

const [clientId, clientSecret] = process.argv.slice(2);
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: ['http://127.0.0.1:1/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  // Any login name is an account; its email is <name>@oidc.test, verified unless the name
  // starts with "unverified"; names starting with "pic" have a picture (served below).
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@oidc.test`,
          email_verified: !id.startsWith('unverified'),
          name: `User ${id}`,
          preferred_username: id,
          ...(id.startsWith('pic') ? { picture: `${issuer}/pictures/${id}.png` } : {}),
        };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username', 'picture'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
// A 1x1 PNG for every picture URL.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/pictures/')) {
    ctx.type = 'image/png';
    ctx.body = PNG;
    return;
  }
  await next();
});
provider.on('grant.error', (ctx, err) => console.log('grant.error', err.message, err.error_detail));

server.on('request', provider.callback());
console.log(`OIDC ready ${issuer}`);
