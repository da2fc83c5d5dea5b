// Table tests for the HPACK decoder and encoder: RFC 7541 Appendix C examples, the Huffman code, round trips and
// hostile inputs.
import { InvalidArgument, ResourceExhausted } from "../lib/errors.ts";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { entrySize, type HeaderField, HpackDecoder, HpackEncoder } from "./hpack.ts";
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, huffmanDecode, huffmanEncode, huffmanEncodedLength } from "./hpack_huffman.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const f = (name: string, value: string): HeaderField => ({ name, value });

interface Step {
  wire: string;
  fields: HeaderField[];
  table: [string, string][];
  size: number;
}

const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const REQUESTS: Omit<Step, "wire">[] = [
  {
    fields: [f(":method", "GET"), f(":scheme", "http"), f(":path", "/"), f(":authority", "www.example.com")],
    table: [[":authority", "www.example.com"]],
    size: 57,
  },
  {
    fields: [
      f(":method", "GET"),
      f(":scheme", "http"),
      f(":path", "/"),
      f(":authority", "www.example.com"),
      f("cache-control", "no-cache"),
    ],
    table: [["cache-control", "no-cache"], [":authority", "www.example.com"]],
    size: 110,
  },
  {
    fields: [
      f(":method", "GET"),
      f(":scheme", "https"),
      f(":path", "/index.html"),
      f(":authority", "www.example.com"),
      f("custom-key", "custom-value"),
    ],
    table: [["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]],
    size: 164,
  },
];
const RESPONSES: Omit<Step, "wire">[] = [
  {
    fields: [
      f(":status", "302"),
      f("cache-control", "private"),
      f("date", DATE1),
      f("location", "https://www.example.com"),
    ],
    table: [["location", "https://www.example.com"], ["date", DATE1], ["cache-control", "private"], [":status", "302"]],
    size: 222,
  },
  {
    fields: [
      f(":status", "307"),
      f("cache-control", "private"),
      f("date", DATE1),
      f("location", "https://www.example.com"),
    ],
    table: [[":status", "307"], ["location", "https://www.example.com"], ["date", DATE1], ["cache-control", "private"]],
    size: 222,
  },
  {
    fields: [
      f(":status", "200"),
      f("cache-control", "private"),
      f("date", DATE2),
      f("location", "https://www.example.com"),
      f("content-encoding", "gzip"),
      f("set-cookie", COOKIE),
    ],
    table: [["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE2]],
    size: 215,
  },
];

// RFC 7541 Appendix C.3 to C.6: the same header lists, encoded without and with Huffman.
const SEQUENCES: { name: string; tableSize: number; huffman: "never" | "always"; steps: Step[] }[] = [
  {
    name: "C.3 requests without Huffman",
    tableSize: 4096,
    huffman: "never",
    steps: [
      "828684410f7777772e6578616d706c652e636f6d",
      "828684be58086e6f2d6361636865",
      "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    ].map((wire, i) => ({ wire, ...REQUESTS[i]! })),
  },
  {
    name: "C.4 requests with Huffman",
    tableSize: 4096,
    huffman: "always",
    steps: [
      "828684418cf1e3c2e5f23a6ba0ab90f4ff",
      "828684be5886a8eb10649cbf",
      "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
    ].map((wire, i) => ({ wire, ...REQUESTS[i]! })),
  },
  {
    name: "C.5 responses without Huffman, eviction at 256 octets",
    tableSize: 256,
    huffman: "never",
    steps: [
      `4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f
       7777772e6578616d706c652e636f6d`,
      "4803333037c1c0bf",
      `88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a
       584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31`,
    ].map((wire, i) => ({ wire, ...RESPONSES[i]! })),
  },
  {
    name: "C.6 responses with Huffman, eviction at 256 octets",
    tableSize: 256,
    huffman: "always",
    steps: [
      `488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3`,
      "4883640effc1c0bf",
      `88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f36
       72c1ab270fb5291f9587316065c003ed4ee5b1063d5007`,
    ].map((wire, i) => ({ wire, ...RESPONSES[i]! })),
  },
];

Deno.test("hpack: RFC 7541 Appendix C sequences decode and encode byte for byte", async (t) => {
  for (const seq of SEQUENCES) {
    await t.step(seq.name, () => {
      const dec = new HpackDecoder({ maxTableSize: seq.tableSize });
      const enc = new HpackEncoder({ huffman: seq.huffman, indexing: "incremental", maxTableSize: seq.tableSize });
      for (const [i, step] of seq.steps.entries()) {
        const got = dec.decode(hex(step.wire));
        assertEquals(got.fields, step.fields, `block ${i + 1} fields`);
        assertEquals(dec.tableEntries(), step.table, `block ${i + 1} table`);
        assertEquals(dec.tableSize, step.size, `block ${i + 1} table size`);
        assertEquals(toHex(enc.encode(step.fields)), step.wire.replace(/\s+/g, ""), `block ${i + 1} encoding`);
      }
    });
  }
});

Deno.test("hpack: RFC 7541 Appendix C.2 single representations", async (t) => {
  const cases: { name: string; wire: string; fields: HeaderField[]; tableLength: number }[] = [
    {
      name: "C.2.1 literal with indexing",
      wire: "400a637573746f6d2d6b65790d637573746f6d2d686561646572",
      fields: [f("custom-key", "custom-header")],
      tableLength: 1,
    },
    {
      name: "C.2.2 literal without indexing",
      wire: "040c2f73616d706c652f70617468",
      fields: [f(":path", "/sample/path")],
      tableLength: 0,
    },
    {
      name: "C.2.3 literal never indexed",
      wire: "100870617373776f726406736563726574",
      fields: [{ name: "password", value: "secret", neverIndex: true }],
      tableLength: 0,
    },
    { name: "C.2.4 indexed", wire: "82", fields: [f(":method", "GET")], tableLength: 0 },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const dec = new HpackDecoder();
      assertEquals(dec.decode(hex(c.wire)).fields, c.fields);
      assertEquals(dec.tableLength, c.tableLength);
    });
  }
  await t.step("the non-indexing encoder keeps never-indexed and uses static names", () => {
    const enc = new HpackEncoder({ huffman: "never" });
    assertEquals(toHex(enc.encode([{ name: "password", value: "secret", neverIndex: true }])), cases[2]!.wire);
    assertEquals(toHex(enc.encode([f(":path", "/sample/path")])), cases[1]!.wire);
    assertEquals(toHex(enc.encode([f(":method", "GET")])), "82");
    assertEquals(enc.tableLength, 0);
  });
});

Deno.test("hpack: the Huffman code", async (t) => {
  await t.step("is complete (Kraft sum of exactly 1)", () => {
    let sum = 0;
    for (const len of HUFFMAN_LENGTHS) sum += 2 ** (30 - len);
    assertEquals(sum, 2 ** 30);
  });
  // Samples of RFC 7541 Appendix B: [symbol, code, length].
  const samples: [number, number, number][] = [
    [0, 0x1ff8, 13],
    [9, 0xffffea, 24],
    [10, 0x3ffffffc, 30],
    [32, 0x14, 6],
    [48, 0x0, 5],
    [58, 0x5c, 7],
    [88, 0xfc, 8],
    [92, 0x7fff0, 19],
    [127, 0xffffffc, 28],
    [128, 0xfffe6, 20],
    [153, 0x1fffdc, 21],
    [199, 0x1ffffec, 25],
    [203, 0x7ffffde, 27],
    [220, 0xffffffd, 28],
    [254, 0x7fffff0, 27],
    [255, 0x3ffffee, 26],
    [256, 0x3fffffff, 30],
  ];
  for (const [sym, code, len] of samples) {
    await t.step(`symbol ${sym}`, () => {
      assertEquals([HUFFMAN_CODES[sym], HUFFMAN_LENGTHS[sym]], [code, len]);
    });
  }
  await t.step("round-trips every octet", () => {
    let s = "";
    for (let i = 0; i < 256; i++) s += String.fromCharCode(i, 255 - i, 97);
    const out = new Uint8Array(huffmanEncodedLength(s));
    assertEquals(huffmanEncode(s, out, 0), out.length);
    const scratch = new Uint8Array(out.length * 2);
    const n = huffmanDecode(out, 0, out.length, scratch);
    assertEquals(String.fromCharCode(...scratch.subarray(0, n)), s);
  });
  const bad: [string, string, string][] = [
    ["EOS inside the string", "ffffffff", "contains EOS"],
    ["padding longer than 7 bits", "1fff", "invalid padding"], // '0' (5 zero bits) then 11 one bits
    ["padding not EOS bits", "00", "invalid padding"], // '0' then 3 zero bits
  ];
  for (const [name, wire, msg] of bad) {
    await t.step(`rejects ${name}`, () => {
      const b = hex(wire);
      assertThrows(() => huffmanDecode(b, 0, b.length, new Uint8Array(16)), InvalidArgument, msg);
    });
  }
});

Deno.test("hpack: round trips", async (t) => {
  let binary = "";
  for (let i = 0; i < 256; i++) binary += String.fromCharCode(i);
  const fields: HeaderField[] = [
    f(":method", "POST"),
    f(":scheme", "http"),
    f(":path", "/runtime.v1.RuntimeService/Version"),
    f(":authority", "/run/davit/davit.sock"),
    f("content-type", "application/grpc"),
    f("te", "trailers"),
    f("user-agent", "grpc-go/1.58.3"),
    f("x-binary", binary),
    f("x-long", "v".repeat(70_000)),
    { name: "authorization", value: "secret", neverIndex: true },
    f("", ""),
  ];
  for (const huffman of ["auto", "always", "never"] as const) {
    for (const indexing of ["none", "incremental"] as const) {
      await t.step(`huffman=${huffman} indexing=${indexing}, three blocks on one table`, () => {
        const enc = new HpackEncoder({ huffman, indexing });
        const dec = new HpackDecoder();
        for (let i = 0; i < 3; i++) {
          const block = enc.encode(fields);
          assertEquals(dec.decode(block).fields, fields);
          assertEquals(dec.tableEntries().length, enc.tableLength);
        }
        if (indexing === "none") assertEquals(dec.tableLength, 0);
      });
    }
  }
  await t.step("size updates come first and resize the table", () => {
    const enc = new HpackEncoder({ indexing: "incremental" });
    const dec = new HpackDecoder();
    dec.decode(enc.encode([f("a", "1"), f("b", "2")]));
    assertEquals(dec.tableLength, 2);
    enc.setMaxTableSize(0);
    const block = enc.encode([f("c", "3")], [100]);
    assertEquals(toHex(block.subarray(0, 3)), "203f45");
    assertEquals(dec.decode(block), { fields: [f("c", "3")], tableSizeUpdates: [0, 100] });
    assertEquals(dec.tableEntries(), [["c", "3"]]);
    assertEquals(dec.tableMaxSize, 100);
  });
  await t.step("an entry larger than the table empties it", () => {
    const dec = new HpackDecoder({ maxTableSize: 64 });
    const enc = new HpackEncoder({ indexing: "incremental", maxTableSize: 64 });
    dec.decode(enc.encode([f("a", "1")]));
    dec.decode(enc.encode([f("big", "x".repeat(40))]));
    assertEquals(dec.tableLength, 0);
    assertEquals(enc.tableLength, 0);
  });
  await t.step("rejects chars above U+00FF", () => {
    assertThrows(() => new HpackEncoder({ huffman: "never" }).encode([f("x", "\u0100")]), InvalidArgument, "latin1");
    assertThrows(() => new HpackEncoder({ huffman: "always" }).encode([f("x", "\u2603")]), InvalidArgument, "latin1");
  });
});

Deno.test("hpack: malformed and hostile blocks fail cleanly", async (t) => {
  // A 4000-octet entry, then 300 references to it: 1.2 MB decoded from 300 octets.
  const amplify = new Uint8Array([...new HpackEncoder({ indexing: "incremental" }).encode([f("x", "y".repeat(4000))])]);
  const bomb = new Uint8Array(amplify.length + 300);
  bomb.set(amplify);
  bomb.fill(0xbe, amplify.length);
  const cases: { name: string; wire: Uint8Array; error: typeof InvalidArgument; msg: string; opts?: object }[] = [
    { name: "index 0", wire: hex("80"), error: InvalidArgument, msg: "index 0" },
    { name: "index past the dynamic table", wire: hex("be"), error: InvalidArgument, msg: "past the dynamic table" },
    { name: "truncated integer", wire: hex("ff"), error: InvalidArgument, msg: "ends inside an integer" },
    { name: "integer too long", wire: hex("ffffffffff7f"), error: InvalidArgument, msg: "4 continuation octets" },
    { name: "string past the block", wire: hex("0005616263"), error: InvalidArgument, msg: "runs past the block" },
    { name: "huge declared string", wire: hex("007fffffff7f"), error: InvalidArgument, msg: "runs past the block" },
    { name: "block ends before the value", wire: hex("0001 61"), error: InvalidArgument, msg: "ends before a string" },
    { name: "size update above the limit", wire: hex("3fe21f"), error: InvalidArgument, msg: "exceeds the limit" },
    { name: "size update after a field", wire: hex("8220"), error: InvalidArgument, msg: "after a header field" },
    { name: "Huffman EOS", wire: hex("0001 61 84ffffffff"), error: InvalidArgument, msg: "contains EOS" },
    {
      name: "string above maxStringLength",
      wire: hex("0001 61 0a 30313233343536373839"),
      error: ResourceExhausted,
      msg: "exceeds 8",
      opts: { maxStringLength: 8 },
    },
    { name: "amplification past maxHeaderListSize", wire: bomb, error: ResourceExhausted, msg: "header list exceeds" },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertThrows(() => new HpackDecoder(c.opts).decode(c.wire), c.error, c.msg);
    });
  }
  await t.step("entrySize counts 32 octets of overhead", () => assertEquals(entrySize("ab", "cde"), 37));
});
