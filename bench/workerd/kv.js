// Stands in for Workers KV: the runtime turns `env.LINKS.get(key)` into `GET /<key>` on this service.
// One link is stored, under the code bench/edge.sh requests.
const RECORD = JSON.stringify({
  v: 1,
  link_id: "00000000-0000-0000-0000-00000000002a",
  destination_url: "https://shop.example/products/linen-shirt?variant=4411&utm_source=creator#reviews",
  version: 1,
});

export default {
  fetch(request) {
    const key = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (request.method === "GET" && key === "k7m2p9qr") {
      return new Response(RECORD);
    }
    return new Response(null, { status: 404 });
  },
};
