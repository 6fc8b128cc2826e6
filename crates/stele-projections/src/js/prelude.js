// Stele's projection prelude (PROTOCOL-OPS.md §2): the definition functions a query calls
// (options, fromAll, fromStream(s), fromCategory/fromCategories, foreachStream, partitionBy,
// when, outputState, transformBy, filterBy, outputTo, on_event, on_any,
// $defines_state_transform), the functions handlers call (emit, linkTo, linkStreamTo,
// copyTo, log), and the entry points the Rust side calls (the object this function returns).
//
// This file evaluates to one function expression. Rust calls it once per runtime, before the
// query runs, with the native log function, whether emit is enabled, and the text of the
// emit-not-allowed error. The states live here, in a Map from partition key to state, so
// processing an event serializes nothing.
(function (nativeLog, emitEnabled, emitNotAllowed) {
  "use strict";
  var global = globalThis;

  // --- What the definition calls say -------------------------------------------------------
  var source = null; // "all" | "streams" | "categories"
  var sourceNames = [];
  var byStream = false;
  var partitionFn;
  var hasHandlerMap = false;
  var handlers = new Map();
  var anyHandler, initFn, initSharedFn, createdFn, deletedFn;
  var transforms = []; // { filter: bool, fn }
  var outputState = false;
  var resultStream = null;
  var partitionPattern = null;
  var includeLinks = false;
  var reorderEvents = false;
  var processingLag = 500;
  var biStateOption = false;

  // --- Runtime state -----------------------------------------------------------------------
  var states = new Map();
  var shared;
  var sharedSet = false;
  var emits = [];
  var last; // the last event object built, reused when Rust hands the same event again

  var bi = false; // isBiState(), fixed once the query has run (definition())
  function isBiState() {
    return initSharedFn !== undefined || biStateOption;
  }

  // --- Definition functions ----------------------------------------------------------------
  // Each returns an object holding only the calls allowed next (PROTOCOL-OPS.md §2.1), so a
  // call out of order fails as "not a function".
  function next(names) {
    var o = {};
    for (var i = 0; i < names.length; i++) o[names[i]] = chain[names[i]];
    return o;
  }

  function requireFunction(what, fn) {
    if (typeof fn !== "function") throw new TypeError(what + " expects a function");
    return fn;
  }

  function nameList(what, args) {
    var list = args.length === 1 && Array.isArray(args[0]) ? args[0] : Array.prototype.slice.call(args);
    if (list.length === 0) throw new TypeError(what + " expects at least one name");
    for (var i = 0; i < list.length; i++) {
      if (typeof list[i] !== "string" || list[i] === "") {
        throw new TypeError(what + " expects stream or category names (strings)");
      }
    }
    return list.slice();
  }

  function setSource(kind, names) {
    if (source !== null) throw new Error("The projection's source is already defined");
    source = kind;
    sourceNames = names;
  }

  var SOURCE_NEXT = ["when", "partitionBy", "outputState"];
  var SOURCE_NEXT_FOREACH = ["when", "partitionBy", "outputState", "foreachStream"];
  var WHEN_NEXT = ["transformBy", "filterBy", "outputState", "outputTo", "$defines_state_transform"];
  var TRANSFORM_NEXT = ["transformBy", "filterBy", "outputState", "outputTo"];

  function addHandlers(map) {
    if (map === null || typeof map !== "object") throw new TypeError("when expects an object of handlers");
    hasHandlerMap = true;
    var keys = Object.keys(map);
    for (var i = 0; i < keys.length; i++) {
      var key = keys[i];
      var fn = requireFunction("the handler '" + key + "'", map[key]);
      switch (key) {
        case "$init": initFn = fn; break;
        case "$initShared": initSharedFn = fn; break;
        case "$any": anyHandler = fn; break;
        case "$created": createdFn = fn; break;
        case "$deleted": deletedFn = fn; break;
        default: handlers.set(key, fn);
      }
    }
    if (deletedFn !== undefined && initSharedFn !== undefined) {
      throw new Error("$deleted is not allowed together with $initShared");
    }
  }

  var chain = {
    when: function (map) {
      addHandlers(map);
      return next(WHEN_NEXT);
    },
    partitionBy: function (fn) {
      partitionFn = requireFunction("partitionBy", fn);
      return next(["when"]);
    },
    foreachStream: function () {
      byStream = true;
      return next(["when"]);
    },
    outputState: function () {
      outputState = true;
      return next(["transformBy", "filterBy", "outputTo"]);
    },
    transformBy: function (fn) {
      transforms.push({ filter: false, fn: requireFunction("transformBy", fn) });
      outputState = true;
      return next(TRANSFORM_NEXT);
    },
    filterBy: function (fn) {
      transforms.push({ filter: true, fn: requireFunction("filterBy", fn) });
      outputState = true;
      return next(TRANSFORM_NEXT);
    },
    outputTo: function (stream, pattern) {
      if (typeof stream !== "string" || stream === "") throw new TypeError("outputTo expects a stream name");
      if (pattern !== undefined && pattern !== null && typeof pattern !== "string") {
        throw new TypeError("outputTo expects the partition pattern as a string");
      }
      resultStream = stream;
      partitionPattern = pattern === undefined ? null : pattern;
      return next([]);
    },
    $defines_state_transform: function () {
      outputState = true;
      return next([]);
    },
  };

  var OPTIONS = {
    $includeLinks: function (v) { includeLinks = v === true; },
    reorderEvents: function (v) { reorderEvents = v === true; },
    processingLag: function (v) {
      if (typeof v !== "number" || !(v >= 0)) throw new TypeError("processingLag must be a number of milliseconds");
      processingLag = Math.floor(v);
    },
    resultStreamName: function (v) {
      if (typeof v !== "string" || v === "") throw new TypeError("resultStreamName must be a stream name");
      resultStream = v;
    },
    biState: function (v) { biStateOption = v === true; },
  };

  global.options = function (opts) {
    if (opts === null || typeof opts !== "object") throw new TypeError("options expects an object");
    var keys = Object.keys(opts);
    for (var i = 0; i < keys.length; i++) {
      var set = Object.prototype.hasOwnProperty.call(OPTIONS, keys[i]) ? OPTIONS[keys[i]] : undefined;
      if (set === undefined) throw new Error("Unrecognized option: " + keys[i]);
      set(opts[keys[i]]);
    }
  };
  global.fromAll = function () {
    setSource("all", []);
    return next(SOURCE_NEXT_FOREACH);
  };
  global.fromStream = function (stream) {
    setSource("streams", nameList("fromStream", [stream]));
    return next(SOURCE_NEXT);
  };
  global.fromStreams = function () {
    setSource("streams", nameList("fromStreams", arguments));
    return next(SOURCE_NEXT);
  };
  global.fromCategory = function () {
    setSource("categories", nameList("fromCategory", arguments));
    return next(SOURCE_NEXT_FOREACH);
  };
  global.fromCategories = function () {
    setSource("categories", nameList("fromCategories", arguments));
    return next(SOURCE_NEXT_FOREACH);
  };
  global.foreachStream = chain.foreachStream;
  global.partitionBy = chain.partitionBy;
  global.when = chain.when;
  global.outputState = chain.outputState;
  global.transformBy = chain.transformBy;
  global.filterBy = chain.filterBy;
  global.outputTo = chain.outputTo;
  global.$defines_state_transform = chain.$defines_state_transform;
  global.on_event = function (eventType, fn) {
    if (typeof eventType !== "string") throw new TypeError("on_event expects an event type");
    hasHandlerMap = true;
    handlers.set(eventType, requireFunction("on_event", fn));
  };
  global.on_any = function (fn) {
    hasHandlerMap = true;
    anyHandler = requireFunction("on_any", fn);
  };

  // --- Functions for handlers --------------------------------------------------------------
  function checkEmit() {
    if (!emitEnabled) throw new Error(emitNotAllowed);
  }
  function requireName(what, v) {
    if (typeof v !== "string" || v === "") throw new TypeError(what);
    return v;
  }
  function metadataText(m) {
    if (m === undefined || m === null) return null;
    if (typeof m !== "object") throw new TypeError("the metadata must be an object");
    return JSON.stringify(m);
  }

  global.emit = function (streamId, eventType, body, metadata) {
    checkEmit();
    requireName("emit expects a stream id", streamId);
    requireName("emit expects an event type", eventType);
    if (body === null || typeof body !== "object") throw new TypeError("emit expects the event body to be an object");
    emits.push([0, streamId, eventType, JSON.stringify(body), metadataText(metadata)]);
  };
  global.linkTo = function (streamId, event, metadata) {
    checkEmit();
    requireName("linkTo expects a stream id", streamId);
    if (event === null || typeof event !== "object") throw new TypeError("linkTo expects an event");
    var target = requireName("linkTo expects an event with a streamId", event.streamId);
    var n = event.sequenceNumber;
    if (typeof n !== "number" || !(n >= 0) || Math.floor(n) !== n) {
      throw new TypeError("linkTo expects an event with a sequenceNumber");
    }
    emits.push([1, streamId, target, n, metadataText(metadata)]);
  };
  global.linkStreamTo = function (streamId, linkedStreamId, metadata) {
    checkEmit();
    requireName("linkStreamTo expects a stream id", streamId);
    requireName("linkStreamTo expects the linked stream id", linkedStreamId);
    emits.push([2, streamId, linkedStreamId, 0, metadataText(metadata)]);
  };
  global.copyTo = function () {};
  global.log = function () {
    var parts = [];
    for (var i = 0; i < arguments.length; i++) {
      var a = arguments[i];
      if (typeof a === "string") {
        parts.push(a);
      } else {
        var text;
        try { text = JSON.stringify(a); } catch (e) { text = undefined; }
        parts.push(text === undefined ? String(a) : text);
      }
    }
    nativeLog(parts.join(" "));
  };

  // --- The event object (PROTOCOL-OPS.md §2.3) ---------------------------------------------
  function parseOrUndefined(text) {
    if (typeof text !== "string" || text === "") return undefined;
    try { return JSON.parse(text); } catch (e) { return undefined; }
  }
  // Building an object property by property is QuickJS's costliest step here, so an event
  // is one object holding a single array of its fields; the properties are accessors on the
  // prototype that read and write that array. `body`/`data`, `metadata` and `linkMetadata`
  // are parsed on first access and kept. `body` and `data` are the same object until one of
  // them is assigned. `toJSON` gives every property to JSON.stringify.
  var UNSET = {};
  var FIELDS = Symbol("fields");
  var BODY = 10, DATA = 11, METADATA = 12, LINK_METADATA = 13;
  function Event(fields) {
    this[FIELDS] = fields;
  }
  function accessor(name, get, set) {
    Object.defineProperty(Event.prototype, name, { get: get, set: set, enumerable: true, configurable: true });
  }
  function plain(name, i) {
    accessor(name, function () { return this[FIELDS][i]; }, function (v) { this[FIELDS][i] = v; });
  }
  function parsed(name, i, raw, alias) {
    accessor(
      name,
      function () {
        var f = this[FIELDS];
        var v = f[i];
        if (v === UNSET) {
          v = raw === 5 && !f[4] ? undefined : parseOrUndefined(f[raw]);
          f[i] = v;
          if (alias !== undefined && f[alias] === UNSET) f[alias] = v;
        }
        return v;
      },
      function (v) { this[FIELDS][i] = v; }
    );
  }
  var NAMES = ["streamId", "sequenceNumber", "eventType", "eventId", "isJson", "bodyRaw", "metadataRaw",
    "linkMetadataRaw", "category", "partition"];
  for (var i = 0; i < NAMES.length; i++) plain(NAMES[i], i);
  parsed("body", BODY, 5, DATA);
  parsed("data", DATA, 5, BODY);
  parsed("metadata", METADATA, 6);
  parsed("linkMetadata", LINK_METADATA, 7);
  Object.defineProperty(Event.prototype, "toJSON", {
    value: function () {
      return {
        streamId: this.streamId, sequenceNumber: this.sequenceNumber, eventType: this.eventType,
        eventId: this.eventId, isJson: this.isJson, bodyRaw: this.bodyRaw, body: this.body,
        data: this.data, metadataRaw: this.metadataRaw, metadata: this.metadata,
        linkMetadataRaw: this.linkMetadataRaw, linkMetadata: this.linkMetadata,
        partition: this.partition, category: this.category,
      };
    },
    writable: true, enumerable: false, configurable: true,
  });

  function eventOf(reuse, s, n, t, id, j, b, m, l, c, p) {
    if (reuse) {
      last[FIELDS][9] = p;
      return last;
    }
    last = new Event([s, n, t, id, j, b, m, l, c, p, UNSET, UNSET, UNSET, UNSET]);
    return last;
  }

  // --- Running handlers ----------------------------------------------------------------------
  function takeEmits() {
    if (emits.length === 0) return 0;
    var out = emits;
    emits = [];
    return out;
  }
  function ensureShared() {
    if (!sharedSet) {
      shared = initSharedFn !== undefined ? initSharedFn() : {};
      sharedSet = true;
    }
  }
  // Calls `h(state, a, b, c)` on partition `p`; the return value replaces the state unless it
  // is undefined. Bi-state: the state passed is a [partitionState, sharedState] pair; a
  // returned array gives both, any other returned value is the partition state, and
  // undefined keeps the pair's (possibly reassigned) elements.
  function runOn(p, h, a, b, c) {
    if (emits.length !== 0) emits = [];
    var r;
    if (bi) {
      ensureShared();
      var pair = [states.get(p), shared];
      r = h(pair, a, b, c);
      if (r === undefined) {
        states.set(p, pair[0]);
        shared = pair[1];
      } else if (Array.isArray(r)) {
        states.set(p, r[0]);
        shared = r[1];
      } else {
        states.set(p, r);
      }
    } else {
      r = h(states.get(p), a, b, c);
      if (r !== undefined) states.set(p, r);
    }
    if (emits.length === 0) return 0;
    return takeEmits();
  }
  function text(v) {
    var t = JSON.stringify(v);
    return t === undefined ? "" : t;
  }
  function parseState(t) {
    return t === "" ? undefined : JSON.parse(t);
  }
  function handledTypes() {
    if (anyHandler !== undefined || !hasHandlerMap) return null;
    return Array.from(handlers.keys());
  }

  return {
    definition: function () {
      bi = isBiState();
      return JSON.stringify({
        source: source,
        names: sourceNames,
        byStream: byStream,
        partitioned: partitionFn !== undefined,
        handledTypes: handledTypes(),
        handlesDeleted: deletedFn !== undefined,
        handlesCreated: createdFn !== undefined,
        biState: isBiState(),
        outputState: outputState,
        includeLinks: includeLinks,
        reorderEvents: reorderEvents,
        processingLag: processingLag,
        resultStream: resultStream,
        partitionPattern: partitionPattern,
      });
    },
    key: function (reuse, s, n, t, id, j, b, m, l, c) {
      var k = partitionFn(eventOf(reuse, s, n, t, id, j, b, m, l, c, undefined));
      if (k === undefined || k === null) return null;
      return typeof k === "string" ? k : String(k);
    },
    process: function (p, reuse, s, n, t, id, j, b, m, l, c) {
      var ev = eventOf(reuse, s, n, t, id, j, b, m, l, c, p);
      var h = handlers.get(ev[FIELDS][2]);
      if (h === undefined) {
        h = anyHandler;
        if (h === undefined) return -1;
      }
      return runOn(p, h, ev);
    },
    init: function (p, hasEvent, reuse, s, n, t, id, j, b, m, l, c) {
      var ev = hasEvent ? eventOf(reuse, s, n, t, id, j, b, m, l, c, p) : undefined;
      if (isBiState()) ensureShared();
      states.set(p, initFn !== undefined ? initFn() : {});
      if (createdFn === undefined || ev === undefined) return 0;
      return runOn(p, createdFn, ev);
    },
    deleted: function (p, soft) {
      if (deletedFn === undefined) return -1;
      return runOn(p, deletedFn, null, p, soft);
    },
    load: function (p, t) {
      states.set(p, parseState(t));
    },
    loadShared: function (t) {
      shared = parseState(t);
      sharedSet = true;
    },
    state: function (p) {
      return text(states.get(p));
    },
    sharedState: function () {
      if (!isBiState()) return null;
      ensureShared();
      return text(shared);
    },
    result: function (p) {
      var s = states.get(p);
      for (var i = 0; i < transforms.length; i++) {
        var step = transforms[i];
        if (step.filter) {
          if (step.fn(s) !== true) {
            s = null;
            break;
          }
        } else {
          s = step.fn(s);
        }
      }
      return text(s);
    },
    drop: function (p) {
      states.delete(p);
    },
    reset: function () {
      states.clear();
      shared = undefined;
      sharedSet = false;
      last = undefined;
    },
  };
});
