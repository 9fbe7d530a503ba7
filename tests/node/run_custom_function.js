// Runs the custom-functions JavaScript that xlwings Server serves, under Node, with the
// Office.js globals stubbed, and calls one function as Excel would. The HTTP call is real:
// xwRequest.post goes to the server given on the command line.
// usage: node run_custom_function.js CODE.js http://127.0.0.1:PORT FUNCTION_ID 'ARGS_JSON'
const fs = require("fs");
const vm = require("vm");
const [codePath, origin, functionId, argsJson] = process.argv.slice(2);

const registry = {};
class CustomFunctionsError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}
const store = {};
Object.assign(globalThis, {
  window: { location: { origin } },
  localStorage: { getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; } },
  Office: {
    onReady: async (cb) => { const info = { host: "Excel", platform: "PC" }; if (cb) cb(info); return info; },
    context: { requirements: { isSetSupported: () => true } },
  },
  Excel: {
    RequestContext: class {
      constructor() { this.workbook = { name: "Book1.xlsx", load() {} }; }
      async sync() {}
    },
  },
  CustomFunctions: {
    associate: (id, fn) => { registry[id] = fn; },
    Error: CustomFunctionsError,
    ErrorCode: { invalidValue: "#VALUE!" },
  },
  xlwings: { getCultureInfoName: async () => "en-US", getDateFormat: async () => "M/d/yyyy" },
  config: { customFunctionsMaxRetries: 1, customFunctionsRetryCodes: [500, 502, 503, 504],
            requestTimeout: 60, onWasm: false },
  xwRequest: {
    post: async (url, body, options) => {
      const r = await fetch(url, { method: "POST", headers: options.headers, body: JSON.stringify(body) });
      const text = await r.text();
      let data; try { data = JSON.parse(text); } catch { data = text; }
      if (!r.ok) { const e = new Error(`HTTP ${r.status}`); e.response = { status: r.status, data, statusText: r.statusText }; throw e; }
      return { data };
    },
  },
});

vm.runInThisContext(fs.readFileSync(codePath, "utf8"), { filename: "custom-functions.js" });

(async () => {
  const fn = registry[functionId];
  if (!fn) { console.log(JSON.stringify({ error: `no function ${functionId}`, known: Object.keys(registry) })); return; }
  const invocation = { address: "Sheet1!B2", setResult: () => {} };
  try {
    const result = await fn(...JSON.parse(argsJson), invocation);
    console.log(JSON.stringify({ result }));
  } catch (e) {
    console.log(JSON.stringify({ error: e.message, code: e.code }));
  }
})();
