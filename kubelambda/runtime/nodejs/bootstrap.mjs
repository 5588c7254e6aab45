// kubelambda's Node.js runtime: `node bootstrap.mjs`, started by the agent for nodejs* functions.
//
// A Lambda Runtime API client loop with no dependencies beyond Node itself. It loads _HANDLER
// from LAMBDA_TASK_ROOT (CommonJS .js/.cjs, ES modules .mjs or .js under "type": "module"),
// calls it with Lambda's context object for each event (async handlers, and callback handlers
// where the runtime still allows them), and reports errors in the shapes Lambda's Node runtime
// uses: {errorType, errorMessage, trace} to the Runtime API, {..., stack} in the log. console.*
// is patched to Lambda's Text or JSON line format and filtered by AWS_LAMBDA_LOG_LEVEL.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import util from "node:util";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const env = process.env;
const require = createRequire(import.meta.url);

// -- the Runtime API ---------------------------------------------------------------------------
const [apiHost, apiPort] = (env.AWS_LAMBDA_RUNTIME_API || "127.0.0.1:9001").split(":");
// One kept-alive connection; an idle socket is unref'ed, so it never holds the event loop open
// (callbackWaitsForEmptyEventLoop relies on the loop emptying).
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const BASE = "/2018-06-01/runtime";

function call(method, route, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: apiHost, port: Number(apiPort), method, path: BASE + route, agent, headers },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function postError(route, error) {
  const body = JSON.stringify(error);
  return call("POST", route, body, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    "Lambda-Runtime-Function-Error-Type": error.errorType,
  });
}

// -- errors ------------------------------------------------------------------------------------
class RuntimeError extends Error {
  constructor(kind, message, cause) {
    super(message);
    // On the instance but not enumerable, as a prototype's name would be: logs stay Lambda's.
    Object.defineProperty(this, "name", { value: `Runtime.${kind}`, configurable: true });
    if (cause && typeof cause.stack === "string") this.stack = cause.stack;
  }
}

function isErrorLike(value) {
  return (
    util.types.isNativeError(value) ||
    (value !== null &&
      typeof value === "object" &&
      typeof value.name === "string" &&
      typeof value.message === "string" &&
      typeof value.stack === "string")
  );
}

// What the Runtime API receives (and a synchronous caller sees): Lambda's "trace" array.
function toResponse(error) {
  if (isErrorLike(error)) {
    return { errorType: error.name, errorMessage: error.message, trace: error.stack.split("\n") };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

// What the log shows: the error's own enumerable fields too, and its stack as "stack".
function toLogged(error) {
  if (!isErrorLike(error)) return toResponse(error);
  return {
    errorType: error.name,
    errorMessage: error.message,
    ...(error.code !== undefined ? { code: error.code } : {}),
    ...error,
    stack: error.stack.split("\n"),
  };
}

// -- logging -----------------------------------------------------------------------------------
const LEVELS = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };
const jsonFormat = (env.AWS_LAMBDA_LOG_FORMAT || "").toUpperCase() === "JSON";
const threshold = LEVELS[(env.AWS_LAMBDA_LOG_LEVEL || "").toUpperCase()] ?? LEVELS.TRACE;
let currentRequestId; // undefined outside an invocation, printed as such (as Lambda does)

function errorFields(value) {
  return {
    errorType: value?.constructor?.name ?? "UnknownError",
    errorMessage: value.message,
    stackTrace: typeof value.stack === "string" ? value.stack.split("\n") : [],
  };
}

function jsonLine(level, args) {
  const record = { timestamp: new Date().toISOString(), level, requestId: currentRequestId };
  if (args.length === 1) {
    record.message = args[0];
    try {
      return JSON.stringify(record, (_key, value) =>
        value instanceof Error ? { ...errorFields(value), ...value } : value,
      );
    } catch {
      record.message = util.format(args[0]);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...args);
  const error = args.find((arg) => arg instanceof Error);
  return JSON.stringify(error ? { ...record, ...errorFields(error) } : record);
}

function writeLog(level, args) {
  const line = jsonFormat
    ? jsonLine(level, args)
    : `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${util.format(...args)}`;
  // One record per line: Lambda turns a message's newlines into carriage returns.
  process.stdout.write(line.replace(/\n/g, "\r") + "\n");
}

function patchConsole() {
  const method = (level) =>
    LEVELS[level] >= threshold ? (...args) => writeLog(level, args) : () => {};
  console.trace = method("TRACE");
  console.debug = method("DEBUG");
  console.info = method("INFO");
  console.log = console.info;
  console.warn = method("WARN");
  console.error = method("ERROR");
  console.fatal = (...args) => writeLog("FATAL", args);
}

function logError(label, error) {
  if (jsonFormat) console.error(isErrorLike(error) ? error : new Error(String(error)));
  else console.error(label, "\t" + JSON.stringify(toLogged(error)));
}

// -- loading the handler -----------------------------------------------------------------------
function isModulePackage(folder) {
  // The nearest package.json decides whether .js is an ES module (stop at node_modules or /).
  for (let dir = folder; ; dir = path.dirname(dir)) {
    if (dir.endsWith(`${path.sep}node_modules`)) return false;
    const manifest = path.join(dir, "package.json");
    if (fs.existsSync(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, "utf8")).type === "module";
      } catch {
        return false;
      }
    }
    if (dir === path.dirname(dir)) return false;
  }
}

async function loadModule(root, moduleRoot, name) {
  const base = path.resolve(root, moduleRoot, name);
  const exists = (suffix) => fs.existsSync(base + suffix);
  const load = async (suffix, esm) =>
    esm ? import(pathToFileURL(base + suffix).href) : require(base + suffix);
  if (exists("") && fs.statSync(base).isFile()) return load("", false);
  const esmPackage = isModulePackage(path.dirname(base));
  if (exists(".js")) return load(".js", esmPackage);
  if (exists(".mjs")) return load(".mjs", true);
  if (exists(".cjs")) return load(".cjs", false);
  // Not beside the task root: Node's own resolution (NODE_PATH, node_modules), as Lambda does.
  return require(require.resolve(name, { paths: [root, path.resolve(root, moduleRoot)] }));
}

async function loadHandler(root, handlerString) {
  if (handlerString.includes("..")) {
    throw new RuntimeError(
      "MalformedHandlerName",
      `'${handlerString}' is not a valid handler name. Use absolute paths when specifying ` +
        "root directories in handler names.",
    );
  }
  const file = path.basename(handlerString);
  const moduleRoot = handlerString.slice(0, handlerString.length - file.length);
  const match = /^([^.]*)\.(.*)$/.exec(file);
  if (!match) throw new RuntimeError("MalformedHandlerName", "Bad handler");
  const [, name, property] = match;
  let loaded;
  try {
    loaded = await loadModule(root, moduleRoot, name);
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new RuntimeError("UserCodeSyntaxError", String(error), error);
    }
    if (error?.code === "MODULE_NOT_FOUND" || error?.code === "ERR_MODULE_NOT_FOUND") {
      throw new RuntimeError("ImportModuleError", String(error));
    }
    throw error;
  }
  const handler = property.split(".").reduce((object, key) => object && object[key], loaded);
  if (!handler) {
    throw new RuntimeError("HandlerNotFound", `${handlerString} is undefined or not exported`);
  }
  if (typeof handler !== "function") {
    throw new RuntimeError("HandlerNotFound", `${handlerString} is not a function`);
  }
  return handler;
}

// Node.js 24 and later have no callback handlers (Lambda refuses them at init).
function callbacksAllowed() {
  const match = /^AWS_Lambda_nodejs(\d+)/.exec(env.AWS_EXECUTION_ENV || "");
  const major = match ? Number(match[1]) : Number(process.versions.node.split(".")[0]);
  return major < 24;
}

// -- the context object ------------------------------------------------------------------------
function parseHeader(value) {
  if (!value) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

function buildContext(headers, settle) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] || 0);
  let waits = true;
  const context = {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: parseHeader(headers["lambda-runtime-cognito-identity"]),
    clientContext: parseHeader(headers["lambda-runtime-client-context"]),
    tenantId: headers["lambda-runtime-aws-tenant-id"],
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    get callbackWaitsForEmptyEventLoop() {
      return waits;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waits = Boolean(value);
    },
    // The legacy completion methods: they never wait for the event loop.
    succeed: (result) => settle(null, result, false),
    fail: (error) => settle(error ?? "handled", undefined, false),
    done: (error, result) => settle(error, result, false),
  };
  return context;
}

// -- the invoke loop ---------------------------------------------------------------------------
let onBeforeExit = null; // what runs when the event loop empties (callback handlers)
process.on("beforeExit", () => {
  const run = onBeforeExit;
  onBeforeExit = null;
  if (run) run();
});

let errorSink = (error) => postError("/init/error", toResponse(error)); // replaced per invoke

function fatal(label, code) {
  return (error) => {
    logError(label, error);
    Promise.resolve(errorSink(error)).finally(() => process.exit(code));
  };
}
process.on("uncaughtException", fatal("Uncaught Exception", 129));
process.on("unhandledRejection", (reason) => {
  const error = new RuntimeError("UnhandledPromiseRejection", String(reason?.stack ?? reason));
  fatal("Unhandled Promise Rejection", 128)(error);
});

function invokeOnce(handler, isAsync) {
  return call("GET", "/invocation/next").then((next) => {
    const headers = next.headers;
    const id = headers["lambda-runtime-aws-request-id"];
    currentRequestId = id;
    const trace = headers["lambda-runtime-trace-id"];
    if (trace) env._X_AMZN_TRACE_ID = trace;
    else delete env._X_AMZN_TRACE_ID;
    errorSink = (error) => postError(`/invocation/${id}/error`, toResponse(error));
    let finished = false;
    const complete = (error, result) => {
      if (finished) return;
      finished = true;
      onBeforeExit = null;
      let sent;
      if (error !== undefined && error !== null) {
        logError("Invoke Error", error);
        sent = errorSink(error);
      } else {
        let body;
        try {
          body = JSON.stringify(result === undefined ? null : result);
        } catch {
          const failure = new RuntimeError("JSONStringifyError", "Unable to stringify response");
          logError("Invoke Error", failure);
          sent = errorSink(failure);
        }
        if (!sent) {
          sent = call("POST", `/invocation/${id}/response`, body, {
            "Content-Type": "application/json",
            "Content-Length": Buffer.byteLength(body),
          });
        }
      }
      sent.then(() => setImmediate(() => loop(handler, isAsync)), fatal("Runtime Error", 1));
    };
    // settle(error, result, waitable): a callback waits for the loop to empty when asked to.
    const settle = (error, result, waitable) => {
      if (finished) return;
      const ok = error === undefined || error === null;
      if (waitable && ok && context.callbackWaitsForEmptyEventLoop) {
        onBeforeExit = () => setImmediate(() => complete(null, result));
        return;
      }
      complete(error, result);
    };
    const context = buildContext(headers, settle);
    // A handler that neither returns a promise nor calls back ends when the loop empties.
    onBeforeExit = () =>
      isAsync
        ? complete(new RuntimeError("NodeJsExit", "Runtime exited without providing a reason"))
        : complete(null, null);
    let event;
    try {
      event = JSON.parse(next.body.toString("utf8") || "{}");
    } catch (error) {
      complete(new RuntimeError("UnmarshalError", `Unable to unmarshal input: ${error.message}`));
      return;
    }
    try {
      const returned = handler(event, context, (error, result) => settle(error, result, true));
      if (returned && typeof returned.then === "function") {
        returned.then(
          (result) => complete(null, result),
          (error) => complete(error ?? new Error("handled")),
        );
      }
    } catch (error) {
      complete(error);
    }
  });
}

function loop(handler, isAsync) {
  invokeOnce(handler, isAsync).catch(fatal("Runtime Error", 1));
}

async function main() {
  patchConsole();
  const root = env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(root, env._HANDLER || "");
    if (handler.length >= 3 && !callbacksAllowed()) {
      throw new RuntimeError(
        "CallbackHandlerDeprecated",
        "ERROR: AWS Lambda has removed support for callback-based function handlers starting " +
          "with Node.js 24. You need to modify this function to use a supported handler " +
          "signature to use Node.js 24 or later.",
      );
    }
  } catch (error) {
    fatal("Uncaught Exception", 129)(error);
    return;
  }
  loop(handler, handler.constructor?.name === "AsyncFunction");
}

main();
