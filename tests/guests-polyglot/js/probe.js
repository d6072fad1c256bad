// The probe guest in JavaScript (componentize-js): a plain tool, and probes
// of what the host gives a JavaScript connector. Each probe says what it
// saw; the test (tests/tests/polyglot.rs) decides whether that is what the
// host must answer.

import { get as getSecret } from 'toolhost:connector/secrets@0.1.0';
import { getEnvironment, getArguments, initialCwd } from 'wasi:cli/environment@0.2.12';
import { exit } from 'wasi:cli/exit@0.2.12';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { instanceNetwork } from 'wasi:sockets/instance-network@0.2.12';
import { createTcpSocket } from 'wasi:sockets/tcp-create-socket@0.2.12';
import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingRequest } from 'wasi:http/types@0.2.12';

// What an import's `err` carries: the bindings throw it wrapped.
function payload(e) {
  return e && e.payload !== undefined ? e.payload : e;
}

// A WIT variant or enum value as text: `access-denied`, `HTTP-request-denied`.
function describe(value) {
  return typeof value === 'object' && value !== null && 'tag' in value ? value.tag : String(value);
}

export const probe = {
  add(a, b) {
    return a + b;
  },

  socket(address) {
    const [host, port] = address.split(':');
    let sock;
    try {
      sock = createTcpSocket('ipv4');
    } catch (e) {
      return `create-tcp-socket: ${describe(payload(e))}`;
    }
    const target = { tag: 'ipv4', val: { port: Number(port), address: host.split('.').map(Number) } };
    try {
      sock.startConnect(instanceNetwork(), target);
      sock.subscribe().block();
      sock.finishConnect();
    } catch (e) {
      return `connect: ${describe(payload(e))}`;
    }
    return 'connected';
  },

  // StarlingMonkey has no file API of its own: what the guest could reach
  // is what wasi:filesystem preopens for it.
  file(path) {
    return `preopens=${getDirectories().length} read=no file API for ${path}`;
  },

  env(name) {
    const variables = getEnvironment();
    const found = variables.find(([key]) => key === name);
    return `vars=${variables.length} args=${getArguments().length} cwd=${initialCwd() ?? 'None'} ${name}=${found ? found[1] : 'None'}`;
  },

  say(text) {
    console.log(text);
    console.error(text);
    return 'written';
  },

  quit() {
    exit({ tag: 'err' });
    return 'still running';
  },

  fetch(url) {
    const parts = new URL(url);
    const request = new OutgoingRequest(new Fields());
    request.setScheme(parts.protocol === 'https:' ? { tag: 'HTTPS' } : { tag: 'HTTP' });
    request.setAuthority(parts.host);
    request.setPathWithQuery(parts.pathname || '/');
    let future;
    try {
      future = handle(request, undefined);
    } catch (e) {
      throw `refused: ${describe(payload(e))}`;
    }
    let answer;
    while ((answer = future.get()) === undefined) {
      future.subscribe().block();
    }
    if (answer.tag === 'err') {
      throw 'the response was taken twice';
    }
    if (answer.val.tag === 'err') {
      throw `failed: ${describe(answer.val.val)}`;
    }
    return answer.val.val.status();
  },

  leak(name) {
    let value;
    try {
      value = getSecret(name);
    } catch (e) {
      throw `no secret: ${describe(payload(e))}`;
    }
    console.log(value);
    console.error(value);
    return value;
  },
};
