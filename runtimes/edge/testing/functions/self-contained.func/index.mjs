// Already bundled: imports nothing but the edge built-ins.
import { EventEmitter } from 'events';
import { Buffer } from 'node:buffer';

export default () => new Response(`${typeof EventEmitter} ${Buffer.from('ok').toString('base64')}`);
