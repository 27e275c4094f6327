// The dead-letter probe (see wrangler.toml beside this file). Test support only.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__probe/send" && request.method === "POST") {
      // A JSON array of message bodies, each sent as a text message, like the edge worker's.
      const bodies = await request.json();
      await env.CLICKS.sendBatch(bodies.map((body) => ({ body, contentType: "text" })));
      return Response.json({ sent: bodies.length });
    }
    return env.EDGE.fetch(request);
  },

  // Dead letters: each body goes to DEAD_LETTERS_URL as it was; acknowledged once that answers 2xx.
  async queue(batch, env) {
    for (const message of batch.messages) {
      const body = typeof message.body === "string" ? message.body : JSON.stringify(message.body);
      try {
        const response = await fetch(env.DEAD_LETTERS_URL, {
          method: "POST",
          body,
          headers: { "Content-Type": "text/plain", "X-Queue": batch.queue, "X-Attempts": String(message.attempts) },
        });
        if (response.ok) {
          message.ack();
        } else {
          message.retry();
        }
      } catch (error) {
        console.error(`passing dead letter ${message.id} on failed: ${error}`);
        message.retry();
      }
    }
  },
};
