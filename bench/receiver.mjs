// A local webhook receiver for the benchmarks: answers 204 to every POST as soon as its body is read,
// and counts what it got. Usage: node bench/receiver.mjs PORT
import { createServer } from "node:http";

const port = Number(process.argv[2] || 18090);
let received = 0;
createServer((request, response) => {
  request.resume();
  request.on("end", () => {
    if (request.url === "/count") {
      response.writeHead(200, { "content-type": "text/plain" }).end(String(received));
      return;
    }
    received += 1;
    response.writeHead(204).end();
  });
}).listen(port, "127.0.0.1");
