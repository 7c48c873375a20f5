// The npm `openai` package against a mem8 server: `node client.mjs BASE_URL PERSONA` makes the
// calls a Node user makes and prints what came back as one JSON object, for
// tests/http/test_node_client.py to check against what its scripted backend was told to say.
import OpenAI, { toFile } from "openai";

const [baseURL, model] = process.argv.slice(2);
if (!baseURL || !model) {
  console.error("usage: node client.mjs BASE_URL PERSONA");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: "mem8-dummy-key", maxRetries: 0, timeout: 30_000 });
const ask = (content) => [{ role: "user", content }];
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
};

async function chatPlain() {
  const completion = await client.chat.completions.create({ model, messages: ask("Hello") });
  return completion.choices[0].message.content;
}

async function chatForAwait() {
  const stream = await client.chat.completions.create({
    model,
    messages: ask("Tell me of the sea"),
    stream: true,
  });
  const deltas = [];
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content;
    if (delta) deltas.push(delta);
  }
  return deltas;
}

async function chatStreamHelper() {
  const stream = client.chat.completions.stream({ model, messages: ask("And of the hills?") });
  const deltas = [];
  stream.on("content", (delta) => deltas.push(delta));
  const final = await stream.finalChatCompletion();
  return { deltas, final: final.choices[0].message.content };
}

async function toolCall() {
  const completion = await client.chat.completions.create({
    model,
    messages: ask("What is the weather in Lisbon?"),
    tools: [weather],
    tool_choice: { type: "function", function: { name: "get_weather" } },
  });
  const choice = completion.choices[0];
  return {
    finish_reason: choice.finish_reason,
    calls: choice.message.tool_calls.map((c) => ({
      id: c.id,
      name: c.function.name,
      arguments: JSON.parse(c.function.arguments),
    })),
  };
}

async function embedding() {
  const response = await client.embeddings.create({ model, input: "Hello from Node" });
  return response.data[0].embedding.length;
}

async function files() {
  const file = await toFile(Buffer.from("Node was here.\n"), "node-notes.txt");
  const created = await client.files.create({ file, purpose: "assistants" });
  const listed = [];
  for await (const each of client.files.list()) listed.push(each.id);
  return { id: created.id, filename: created.filename, listed };
}

async function responsePlain() {
  const response = await client.responses.create({ model, input: "Say something" });
  return { id: response.id, text: response.output_text };
}

// A streamed event's response is as sent: no `output_text` convenience, so its text parts joined.
const outputText = (response) =>
  response.output
    .flatMap((item) => item.content ?? [])
    .filter((part) => part.type === "output_text")
    .map((part) => part.text)
    .join("");

async function responseStream() {
  const stream = await client.responses.create({ model, input: "Stream something", stream: true });
  const deltas = [];
  let completed = null;
  for await (const event of stream) {
    if (event.type === "response.output_text.delta") deltas.push(event.delta);
    if (event.type === "response.completed") completed = outputText(event.response);
  }
  return { deltas, completed };
}

// In order: the test enqueues one scripted answer per call that reaches the backend.
const results = {
  chat: await chatPlain(),
  chat_stream: await chatForAwait(),
  chat_stream_helper: await chatStreamHelper(),
  tool_call: await toolCall(),
  embedding_length: await embedding(),
  files: await files(),
  response: await responsePlain(),
  response_stream: await responseStream(),
};
console.log(JSON.stringify(results));
