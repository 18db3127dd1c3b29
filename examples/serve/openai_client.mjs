// openai_client.mjs: `hyperlora serve` called with OpenAI's own npm client,
// the base URL set to the server. Prints one JSON object: a completion, the
// same completion streamed, a chat reply, and the models the server lists.
//   node openai_client.mjs http://127.0.0.1:8080/v1 [ADAPTER]
import OpenAI from "openai";

const [baseURL, adapter] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.HYPERLORA_API_KEY || "none" });
// With an adapter name as `model`, the server applies that adapter at scale 1.
const model = adapter || (await client.models.list()).data.find((m) => m.kind === "base").id;

const completion = await client.completions.create({
  model, prompt: "Once upon a time", max_tokens: 24, temperature: 0.8, seed: 7,
});
let streamed = "";
const stream = await client.completions.create({
  model, prompt: "Once upon a time", max_tokens: 24, temperature: 0.8, seed: 7, stream: true,
});
for await (const chunk of stream) streamed += chunk.choices[0].text;
const chat = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "Tell me about a little dog." }], max_tokens: 24, seed: 1,
});
const models = (await client.models.list()).data.map((m) => m.id);
console.log(JSON.stringify({
  model,
  completion: completion.choices[0].text,
  finish_reason: completion.choices[0].finish_reason,
  usage: completion.usage,
  fingerprint: completion.system_fingerprint,
  streamed,
  chat: chat.choices[0].message.content,
  models,
}));
