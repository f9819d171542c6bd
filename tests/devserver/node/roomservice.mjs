// The official Node server SDK against `greenroom serve`: list/create/delete rooms and send data.
// Usage: node roomservice.mjs <http url> <api key> <api secret> <room with listeners>
// Prints one JSON object per line: {"step": ..., ...}; exits 1 on any unexpected error.
import { DataPacket_Kind, RoomServiceClient } from 'livekit-server-sdk';

const [url, key, secret, room] = process.argv.slice(2);
const client = new RoomServiceClient(url, key, secret);
const say = (step, fields) => console.log(JSON.stringify({ step, ...fields }));

const created = await client.createRoom({ name: 'node-made', emptyTimeout: 60, metadata: 'from node' });
say('created', { name: created.name, sid: created.sid, emptyTimeout: created.emptyTimeout, metadata: created.metadata });

say('listed', { names: (await client.listRooms()).map((r) => r.name).sort() });
say('listed-one', { names: (await client.listRooms([room])).map((r) => r.name) });

await client.sendData(room, new TextEncoder().encode('from node'), DataPacket_Kind.RELIABLE, {
  destinationIdentities: ['bob'],
  topic: 'node',
});
say('sent', {});

await client.deleteRoom('node-made');
say('deleted', { names: (await client.listRooms()).map((r) => r.name).sort() });

try {
  await client.deleteRoom('node-made');
  say('deleted-again', { error: null });
} catch (err) {
  say('deleted-again', { error: { status: err.status, code: err.code, message: err.message } });
}
