// The baseline: the cheapest possible redirect on the same runtime.
export default {
  fetch() {
    return new Response(null, { status: 302, headers: { Location: "https://shop.example/" } });
  },
};
