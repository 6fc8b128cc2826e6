//! User projections in JavaScript on QuickJS (rquickjs): EventStoreDB's projection API
//! ("engine v1", PROTOCOL-OPS.md §2).
//!
//! A [`JsProjection`] owns one QuickJS runtime and context. Compiling runs the prelude
//! (`prelude.js`: the definition functions, `emit`/`linkTo`/`linkStreamTo`/`copyTo`/`log`,
//! and the entry points used here) and then the query, whose definition calls give the
//! [`QueryDefinition`]. States live inside JavaScript, in a Map from partition key to state,
//! so processing an event serializes nothing; JSON is produced only when a state or result
//! is asked for.
//!
//! Sandboxing: each call into JavaScript has a time budget (`execution_timeout`, or
//! `compilation_timeout` while compiling) enforced by QuickJS's interrupt handler, the
//! runtime has a memory limit, and the native stack QuickJS may use is bounded so deep
//! recursion throws a `RangeError` instead of overflowing the thread's stack. After a
//! [`JsError::TimedOut`] or [`JsError::OutOfMemory`] the projection is faulted: every later
//! call returns that error again, and the caller drops it.
//!
//! Bi-state (`$initShared`, or `options({biState: true})`): handlers, `$created` and
//! `$deleted` receive a `[partitionState, sharedState]` pair as their state. Returning
//! `undefined` keeps the pair's elements (which the handler may have reassigned or
//! mutated); returning an array sets both from its first two elements; returning anything
//! else replaces the partition state only. [`JsProjection::state_json`] and the result give
//! the partition state, [`JsProjection::shared_state_json`] the shared one. The shared
//! state is initialized (from `$initShared`, `{}` without it) when first needed unless
//! [`JsProjection::load_shared`] set it.

mod budget;
mod definition;
mod emits;
mod error;
mod event;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_output;
#[cfg(test)]
mod tests_sandbox;

use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use rquickjs::context::EvalOptions;
use rquickjs::function::Args;
use rquickjs::{Context, Ctx, Function, Object, Persistent, Runtime, Value};

use self::budget::Budget;
pub use self::error::JsError;
use self::error::{describe, Thrown, EMIT_NOT_ALLOWED};
use self::event::{push_event, LastEvent, EVENT_ARGS};
use crate::query::{Emitted, EventInput, QueryDefinition};

/// Default memory limit of a projection's runtime.
pub const DEFAULT_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Default budget of one handler call (`ProjectionExecutionTimeout`).
pub const DEFAULT_EXECUTION_TIMEOUT: Duration = Duration::from_millis(250);
/// Default budget for compiling the query and running its definition calls
/// (`ProjectionCompilationTimeout`).
pub const DEFAULT_COMPILATION_TIMEOUT: Duration = Duration::from_millis(500);
/// The native stack JavaScript may use: deep recursion throws a `RangeError` past it. Well
/// under the 2 MiB of a Rust thread's default stack.
const MAX_STACK_BYTES: usize = 512 * 1024;
/// The prelude: one function expression returning the entry points.
const PRELUDE: &str = include_str!("prelude.js");

/// What a projection's runtime may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The runtime's memory limit.
    pub memory_bytes: usize,
    /// How long one handler call may run.
    pub execution_timeout: Duration,
    /// How long compiling the query and running its definition calls may take.
    pub compilation_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            execution_timeout: DEFAULT_EXECUTION_TIMEOUT,
            compilation_timeout: DEFAULT_COMPILATION_TIMEOUT,
        }
    }
}

/// The prelude's entry points.
struct Api {
    key: Persistent<Function<'static>>,
    process: Persistent<Function<'static>>,
    init: Persistent<Function<'static>>,
    /// The cold entry points (`deleted`, `load`, `state`, `result`, …), looked up by name.
    all: Persistent<Object<'static>>,
}

impl Api {
    fn named<'js>(&self, ctx: &Ctx<'js>, name: &str) -> rquickjs::Result<Function<'js>> {
        self.all.clone().restore(ctx)?.get(name)
    }
}

/// What was running when a call failed, for error messages.
#[derive(Debug, Clone, Copy)]
enum Activity<'a> {
    Compile,
    PartitionBy(&'a str),
    Handler(&'a str),
    Init(&'a str),
    Deleted(&'a str),
    State(&'a str),
    Result(&'a str),
}

impl fmt::Display for Activity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activity::Compile => write!(f, "compiling the query"),
            Activity::PartitionBy(t) => write!(f, "partitionBy for event type '{t}'"),
            Activity::Handler(t) => write!(f, "the handler for event type '{t}'"),
            Activity::Init(p) => write!(f, "$init/$created for partition '{p}'"),
            Activity::Deleted(p) => write!(f, "$deleted for partition '{p}'"),
            Activity::State(p) => write!(f, "the state of partition '{p}'"),
            Activity::Result(p) => {
                write!(f, "the result (transformBy/filterBy) of partition '{p}'")
            }
        }
    }
}

/// A compiled user projection: its definition, and the states of the partitions it holds.
/// Not `Send`: it lives on the thread that compiled it.
pub struct JsProjection {
    // Declared (so dropped) before the context and the runtime they belong to.
    api: Api,
    context: Context,
    runtime: Runtime,
    budget: Rc<Budget>,
    limits: Limits,
    definition: QueryDefinition,
    /// `handled_types` as a set, for skipping unhandled events without calling JavaScript.
    handled: Option<HashSet<String>>,
    /// The partitions whose state is held.
    partitions: HashSet<String>,
    last_event: LastEvent,
    /// Set by a timeout or out-of-memory: every later call returns it.
    faulted: Option<JsError>,
}

impl fmt::Debug for JsProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsProjection")
            .field("definition", &self.definition)
            .field("partitions", &self.partitions.len())
            .field("faulted", &self.faulted)
            .finish_non_exhaustive()
    }
}

impl JsProjection {
    /// Compiles the query (under `compilation_timeout`), runs its definition calls, returns
    /// the definition. An empty query, or one that never calls a `from*` function, is a
    /// [`JsError::Compile`].
    pub fn compile(
        query: &str,
        emit_enabled: bool,
        limits: Limits,
    ) -> Result<JsProjection, JsError> {
        if query.trim().is_empty() {
            return Err(JsError::Compile("the query is empty".to_owned()));
        }
        let runtime = Runtime::new()
            .map_err(|e| JsError::OutOfMemory(format!("no JavaScript runtime: {e}")))?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(MAX_STACK_BYTES);
        let budget = Budget::new();
        let interrupt = Rc::clone(&budget);
        runtime.set_interrupt_handler(Some(Box::new(move || interrupt.should_interrupt())));
        let context = Context::full(&runtime)
            .map_err(|e| JsError::OutOfMemory(format!("no JavaScript context: {e}")))?;

        budget.arm(limits.compilation_timeout);
        let setup =
            context.with(|ctx| setup(&ctx, query, emit_enabled).map_err(|e| describe(&ctx, e)));
        let fired = budget.disarm();
        let (api, definition_json) = match setup {
            Ok(done) => done,
            Err(thrown) => return Err(classify(Activity::Compile, fired, thrown, &limits)),
        };
        let definition = definition::parse(&definition_json)?;
        let handled = definition
            .handled_types
            .as_ref()
            .map(|types| types.iter().cloned().collect());
        Ok(JsProjection {
            api,
            context,
            runtime,
            budget,
            limits,
            definition,
            handled,
            partitions: HashSet::new(),
            last_event: LastEvent::default(),
            faulted: None,
        })
    }

    /// What the query's definition calls said.
    pub fn definition(&self) -> &QueryDefinition {
        &self.definition
    }

    /// `partitionBy`'s key for this event: `None` if the function returns null/undefined
    /// (the event is skipped), or for a JSON event with an empty body (which reaches no
    /// handler). Numbers become their JS string form (`"1"`, `"2.5"`). Without
    /// `partitionBy`, the key is the stream for `foreachStream()` and `""` otherwise.
    pub fn partition_key(&mut self, event: &EventInput<'_>) -> Result<Option<String>, JsError> {
        self.check_faulted()?;
        if !self.definition.partitioned {
            let key = if self.definition.by_stream {
                event.stream_id
            } else {
                ""
            };
            return Ok(Some(key.to_owned()));
        }
        if event::is_skipped(event) {
            return Ok(None);
        }
        let reuse = self.last_event.matches(event);
        self.last_event.clear();
        let key = self.call(Activity::PartitionBy(event.event_type), |ctx, api| {
            let key = api.key.clone().restore(ctx)?;
            let mut args = Args::new(ctx.clone(), EVENT_ARGS);
            push_event(&mut args, reuse, event)?;
            key.call_arg::<Option<String>>(args)
        })?;
        self.last_event.record(event);
        Ok(key)
    }

    /// Whether a partition's state is held (in memory).
    pub fn has_partition(&self, partition: &str) -> bool {
        self.partitions.contains(partition)
    }

    /// Creates a partition's state from `$init` (`{}` without `$init`); if `$created` is
    /// defined and an event is given, calls it with `(state, event)`. Returns the emits of
    /// `$created`.
    pub fn init_partition(
        &mut self,
        partition: &str,
        event: Option<&EventInput<'_>>,
    ) -> Result<Vec<Emitted>, JsError> {
        self.check_faulted()?;
        let reuse = event.is_some_and(|e| self.last_event.matches(e));
        if event.is_some() && !reuse {
            self.last_event.clear();
        }
        let emitted = self.call(Activity::Init(partition), |ctx, api| {
            let init = api.init.clone().restore(ctx)?;
            let mut args = Args::new(ctx.clone(), 2 + EVENT_ARGS);
            args.push_arg(partition)?;
            args.push_arg(event.is_some())?;
            if let Some(event) = event {
                push_event(&mut args, reuse, event)?;
            }
            emits::read_emits(init.call_arg::<Value>(args)?)
        })?;
        if let Some(event) = event {
            self.last_event.record(event);
        }
        self.partitions.insert(partition.to_owned());
        Ok(emitted)
    }

    /// Sets a partition's state from stored JSON text (a checkpoint); `""` is the state
    /// `undefined`. For bi-state this is the partition's part of the state.
    pub fn load_partition(&mut self, partition: &str, state_json: &str) -> Result<(), JsError> {
        self.call(Activity::State(partition), |ctx, api| {
            api.named(ctx, "load")?
                .call::<_, ()>((partition, state_json))
        })?;
        self.partitions.insert(partition.to_owned());
        Ok(())
    }

    /// Sets the shared state of a bi-state projection from stored JSON text.
    pub fn load_shared(&mut self, state_json: &str) -> Result<(), JsError> {
        self.call(Activity::State("(shared)"), |ctx, api| {
            api.named(ctx, "loadShared")?.call::<_, ()>((state_json,))
        })
    }

    /// Runs the handler for the event's type (or `$any`) on the partition's state, which
    /// must exist (call [`JsProjection::init_partition`] first). `Ok(None)` when no handler
    /// applies (the type isn't handled, or a JSON event has an empty body);
    /// `Ok(Some(emits))` when a handler ran. A handler's return value replaces the state
    /// unless it is undefined.
    pub fn process(
        &mut self,
        partition: &str,
        event: &EventInput<'_>,
    ) -> Result<Option<Vec<Emitted>>, JsError> {
        self.check_faulted()?;
        if event::is_skipped(event) {
            return Ok(None);
        }
        if let Some(handled) = &self.handled {
            if !handled.contains(event.event_type) {
                return Ok(None);
            }
        }
        self.require_partition(partition)?;
        let reuse = self.last_event.matches(event);
        self.last_event.clear();
        let outcome = self.call(Activity::Handler(event.event_type), |ctx, api| {
            let process = api.process.clone().restore(ctx)?;
            let mut args = Args::new(ctx.clone(), 1 + EVENT_ARGS);
            args.push_arg(partition)?;
            push_event(&mut args, reuse, event)?;
            emits::read_outcome(process.call_arg::<Value>(args)?)
        })?;
        self.last_event.record(event);
        Ok(outcome)
    }

    /// Calls `$deleted(state, null, partition, isSoftDelete)` for a deleted stream's
    /// partition (whose state must be held); `Ok(None)` if there is no `$deleted` handler.
    pub fn deleted(
        &mut self,
        partition: &str,
        is_soft_delete: bool,
    ) -> Result<Option<Vec<Emitted>>, JsError> {
        self.check_faulted()?;
        if !self.definition.handles_deleted {
            return Ok(None);
        }
        self.require_partition(partition)?;
        self.call(Activity::Deleted(partition), |ctx, api| {
            let deleted = api.named(ctx, "deleted")?;
            emits::read_outcome(deleted.call::<_, Value>((partition, is_soft_delete))?)
        })
    }

    /// `JSON.stringify` of the partition's state; `None` if the partition isn't held. A
    /// state of `undefined` gives `""`.
    pub fn state_json(&mut self, partition: &str) -> Result<Option<String>, JsError> {
        if !self.partitions.contains(partition) {
            return self.check_faulted().map(|()| None);
        }
        self.call(Activity::State(partition), |ctx, api| {
            api.named(ctx, "state")?.call::<_, String>((partition,))
        })
        .map(Some)
    }

    /// `JSON.stringify` of the shared state; `None` unless the projection is bi-state.
    pub fn shared_state_json(&mut self) -> Result<Option<String>, JsError> {
        self.call(Activity::State("(shared)"), |ctx, api| {
            api.named(ctx, "sharedState")?.call::<_, Option<String>>(())
        })
    }

    /// The partition's result: its state after the `transformBy`/`filterBy` chain (a
    /// `filterBy` not returning `true` gives `"null"`); the same as
    /// [`JsProjection::state_json`] without transforms. `None` if the partition isn't held.
    pub fn result_json(&mut self, partition: &str) -> Result<Option<String>, JsError> {
        if !self.partitions.contains(partition) {
            return self.check_faulted().map(|()| None);
        }
        self.call(Activity::Result(partition), |ctx, api| {
            api.named(ctx, "result")?.call::<_, String>((partition,))
        })
        .map(Some)
    }

    /// Forgets a partition's state (cache eviction).
    pub fn drop_partition(&mut self, partition: &str) {
        if !self.partitions.remove(partition) || self.faulted.is_some() {
            return;
        }
        if let Err(e) = self.call(Activity::State(partition), |ctx, api| {
            api.named(ctx, "drop")?.call::<_, ()>((partition,))
        }) {
            tracing::debug!(target: "stele_projections::js", "dropping partition '{partition}': {e}");
        }
    }

    /// Forgets every state, the shared one included (reset).
    pub fn reset(&mut self) {
        self.partitions.clear();
        self.last_event.clear();
        if self.faulted.is_some() {
            return;
        }
        if let Err(e) = self.call(Activity::State("(all)"), |ctx, api| {
            api.named(ctx, "reset")?.call::<_, ()>(())
        }) {
            tracing::debug!(target: "stele_projections::js", "resetting: {e}");
        }
        self.runtime.run_gc();
    }

    /// Bytes the runtime holds (QuickJS's allocations), for statistics.
    pub fn memory_used(&self) -> usize {
        usize::try_from(self.runtime.memory_usage().malloc_size).unwrap_or(0)
    }

    fn check_faulted(&self) -> Result<(), JsError> {
        match &self.faulted {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn require_partition(&self, partition: &str) -> Result<(), JsError> {
        if self.partitions.contains(partition) {
            Ok(())
        } else {
            Err(JsError::Handler(format!(
                "partition '{partition}' has no state (init_partition or load_partition first)"
            )))
        }
    }

    /// Runs `f` in the context under the execution budget, turning a failure into a
    /// [`JsError`] (and faulting the projection on a timeout or out-of-memory).
    fn call<R>(
        &mut self,
        activity: Activity<'_>,
        f: impl for<'js> FnOnce(&Ctx<'js>, &Api) -> rquickjs::Result<R>,
    ) -> Result<R, JsError> {
        self.check_faulted()?;
        let api = &self.api;
        self.budget.arm(self.limits.execution_timeout);
        let outcome = self
            .context
            .with(|ctx| f(&ctx, api).map_err(|e| describe(&ctx, e)));
        let fired = self.budget.disarm();
        outcome.map_err(|thrown| {
            let error = classify(activity, fired, thrown, &self.limits);
            if error.is_fatal() {
                self.faulted = Some(error.clone());
            }
            error
        })
    }
}

/// Evaluates the prelude and the query; returns the entry points and the definition JSON.
fn setup(ctx: &Ctx<'_>, query: &str, emit_enabled: bool) -> rquickjs::Result<(Api, String)> {
    let factory: Function = ctx.eval_with_options(PRELUDE, script_options("prelude.js", true))?;
    let log = Function::new(ctx.clone(), |message: String| {
        tracing::debug!(target: "stele_projections::js", "{message}");
    })?;
    let all: Object = factory.call((log, emit_enabled, EMIT_NOT_ALLOWED))?;
    ctx.eval_with_options::<Value, _>(query, script_options("query", false))?;
    let definition: String = all.get::<_, Function>("definition")?.call(())?;
    let api = Api {
        key: Persistent::save(ctx, all.get::<_, Function>("key")?),
        process: Persistent::save(ctx, all.get::<_, Function>("process")?),
        init: Persistent::save(ctx, all.get::<_, Function>("init")?),
        all: Persistent::save(ctx, all),
    };
    Ok((api, definition))
}

/// A global script named `filename`; user queries run in sloppy mode, as in EventStoreDB.
fn script_options(filename: &str, strict: bool) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = strict;
    options.filename = Some(filename.to_owned());
    options
}

/// Turns what a failed call threw into the error to report.
fn classify(activity: Activity<'_>, fired: bool, thrown: Thrown, limits: &Limits) -> JsError {
    if fired {
        let limit = match activity {
            Activity::Compile => limits.compilation_timeout,
            _ => limits.execution_timeout,
        };
        return JsError::TimedOut(format!(
            "{activity} ran longer than {} ms",
            limit.as_millis()
        ));
    }
    if thrown.out_of_memory {
        return JsError::OutOfMemory(format!(
            "{activity} reached the memory limit of {} bytes: {}",
            limits.memory_bytes, thrown.text
        ));
    }
    if thrown.not_allowed {
        return JsError::NotAllowed(format!("{activity}: {}", thrown.text));
    }
    match activity {
        Activity::Compile => JsError::Compile(thrown.text),
        _ => JsError::Handler(format!("{activity}: {}", thrown.text)),
    }
}
