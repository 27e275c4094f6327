// Stands in for the click queue: accepts every message (the runtime POSTs each `send`) and drops it.
let accepted = 0;

export default {
  async fetch(request) {
    await request.arrayBuffer();
    accepted += 1;
    // The runtime reads the queue's send metadata from the answer, as Cloudflare's (and miniflare's) give it.
    const metrics = { backlogCount: 0, backlogBytes: 0, oldestMessageTimestamp: 0 };
    return Response.json({ metadata: { metrics } }, { headers: { "X-Accepted": String(accepted) } });
  },
};
