//! Lowering: runs the program's statements once per sweep point, checking
//! types, arguments and checkpoint headers as it goes, and builds the lazy
//! graph, the saves and the report layout. No tensor data is read here:
//! `init` and `finetune` become training jobs that the executor runs.

mod builtins;
mod call;
mod command;
mod domain;
mod env;
mod expr;
mod lm;
mod merge;
mod model;
mod modules;
mod plot;
mod plot_domain;
mod settings;
mod stmt;
mod symbolic;
mod train;
mod value;

pub use domain::range_values;
pub use plot::FigureJob;
pub use settings::{parse_size, valid_device, SaveDtype, Settings};
pub use value::Value;

use crate::diag::{Diagnostic, Diagnostics, FileId, Sources, Span};
use crate::eval::cache::Cache;
use crate::graph::{Graph, NodeId};
use crate::io::Checkpoint;
use crate::report::Table;
use env::{Env, Frame};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a program asks for, ready to execute.
pub struct Plan {
    pub graph: Graph,
    pub table: Table,
    pub saves: Vec<SaveJob>,
    /// The figures, drawn from the finished report.
    pub figures: Vec<FigureJob>,
    pub settings: Settings,
    /// Where `init` and `finetune` results live (kept alive with the plan,
    /// whose trained checkpoints are inside it), with its counters; set by
    /// the run (a temporary one if none is).
    pub cache: Option<Cache>,
    /// The program calls `init` or `finetune`.
    pub trains: bool,
    /// Configs, datasets and texts the program reads: no output may replace
    /// them.
    pub read_files: Vec<PathBuf>,
    /// Model measurements another shard of a sharded run makes: this run
    /// leaves them out, and their cells empty (see `crate::shard`).
    pub skipped: std::collections::BTreeSet<crate::graph::MeasureId>,
    /// The shard this run is, with its share of the work.
    pub shard: Option<crate::report::record::ShardRecord>,
    /// The record a folder save carries as `tv_run.json`.
    pub folder_record: Option<String>,
}

/// Run-wide settings that lowering needs.
pub struct Training {
    /// `--seed`: the default seed of `init` and `finetune`, over `set seed`.
    pub seed: Option<u64>,
    /// `--allow-commands`: `command(...)` may run.
    pub allow_commands: bool,
    /// Elaborate every sweep point by point, even those that could be
    /// lowered once (see `symbolic`): the yardstick of the tests.
    pub elaborate_sweeps: bool,
}

/// A `save` statement at one sweep point.
#[derive(Clone, Debug)]
pub struct SaveJob {
    pub node: NodeId,
    pub path: PathBuf,
    pub span: Span,
}

/// A user function call: where the function is defined, its arguments,
/// and whether it is only being checked (dry) or evaluated for a default.
pub(super) type CallKey = (Span, Vec<Value>, bool, bool);

/// Lowers the program whose root file is `root` (already in `sources`).
pub fn lower(sources: &mut Sources, root: FileId, training: Training) -> (Plan, Diagnostics) {
    let base_dir = sources
        .get(root)
        .path
        .as_ref()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_default();
    let settings = Settings {
        seed: training.seed.unwrap_or(0),
        ..Settings::default()
    };
    let mut lowerer = Lowerer {
        sources,
        graph: Graph::default(),
        table: Table::default(),
        saves: Vec::new(),
        figures: Vec::new(),
        eval_sites: Default::default(),
        sweep_scope: Vec::new(),
        settings,
        diags: Vec::new(),
        modules: HashMap::new(),
        loading: Vec::new(),
        checkpoints: HashMap::new(),
        base_dir,
        root,
        row: Vec::new(),
        dry: 0,
        calls: Vec::new(),
        call_results: HashMap::new(),
        too_many_points: false,
        argument_names: Vec::new(),
        enclosing_points: 1.0,
        in_default: false,
        save_targets: Default::default(),
        trains: false,
        train_jobs: HashMap::new(),
        training,
        configs: HashMap::new(),
        datasets: HashMap::new(),
        tokenizers: HashMap::new(),
        texts: HashMap::new(),
        text_tasks: HashMap::new(),
        command_template: None,
        command_weights: Vec::new(),
        trial: None,
        next_var: 0,
    };
    lowerer.root_file(root);
    lowerer.check_figures();
    let mut read_files: Vec<PathBuf> = lowerer.configs.keys().chain(lowerer.datasets.keys()).cloned().collect();
    read_files.extend(lowerer.texts.keys().map(|key| key.0.clone()));
    let plan = Plan {
        graph: lowerer.graph,
        table: lowerer.table,
        saves: lowerer.saves,
        figures: lowerer.figures,
        settings: lowerer.settings,
        cache: None,
        trains: lowerer.trains,
        read_files,
        skipped: Default::default(),
        shard: None,
        folder_record: None,
    };
    (plan, crate::diag::dedup(lowerer.diags))
}

pub use crate::report::RowKeyPart;

/// A user function being called.
struct Call {
    name: String,
    /// Where it is called (at its definition, while its body is checked).
    site: Span,
    /// Where it is defined: what identifies it.
    definition: Span,
}

struct Lowerer<'s> {
    sources: &'s mut Sources,
    graph: Graph,
    table: Table,
    saves: Vec<SaveJob>,
    figures: Vec<FigureJob>,
    /// The eval statements of each name and the sweeps around them, for
    /// checking figures.
    eval_sites: plot::EvalSites,
    /// The variables of the sweeps being lowered and their values,
    /// outermost first.
    sweep_scope: Vec<(String, plot_domain::Domain)>,
    settings: Settings,
    diags: Diagnostics,
    /// The global names of every file lowered so far.
    modules: HashMap<FileId, Frame>,
    /// Files being imported, to catch cycles.
    loading: Vec<FileId>,
    /// Opened checkpoints by `path_identity` (or the error opening gave).
    checkpoints: HashMap<PathBuf, Result<Arc<Checkpoint>, Diagnostic>>,
    /// Relative paths in the program are relative to the root file.
    base_dir: PathBuf,
    root: FileId,
    /// The current sweep point.
    row: Vec<RowKeyPart>,
    /// Above zero while checking code that does not really run (a `fn`
    /// body at its definition, a sweep body whose domain failed): errors
    /// are reported, but nothing is recorded.
    dry: usize,
    /// The user functions being called and where, innermost last.
    calls: Vec<Call>,
    /// Results of user function calls by definition and arguments: a body
    /// depends on nothing else, so each distinct call is lowered once, and
    /// `f(x) = g(x) + g(x)` nested deep costs linear, not exponential, time.
    call_results: HashMap<CallKey, Value>,
    /// The parameter names of the builtin being applied, by argument span.
    argument_names: Vec<(Span, String)>,
    /// A sweep went over the point limit: stop elaborating sweep points.
    too_many_points: bool,
    /// Points of the sweeps being elaborated, multiplied (1 outside any).
    enclosing_points: f64,
    /// True while a parameter's default value is evaluated.
    in_default: bool,
    /// Set by `init` and `finetune`.
    trains: bool,
    /// Training jobs by their description: the same call is one job.
    train_jobs: HashMap<String, NodeId>,
    /// `path_identity` of every save so far.
    save_targets: std::collections::HashSet<PathBuf>,
    training: Training,
    /// Model configs and datasets by path, as graph registry indices (or
    /// the error reading them gave).
    configs: HashMap<PathBuf, Result<usize, Diagnostic>>,
    datasets: HashMap<PathBuf, Result<usize, Diagnostic>>,
    /// Tokenizers by model folder, and tokenized texts.
    tokenizers: HashMap<PathBuf, Result<Arc<tokenizers::Tokenizer>, String>>,
    texts: HashMap<lm::TextKey, Result<lm::Documents, Diagnostic>>,
    /// Registered text tasks, so equal measurements share one.
    text_tasks: HashMap<lm::TaskKey, usize>,
    /// While the command string of `command(...)` is lowered: whether the
    /// weights come as the `model` argument. `{model}` then stands for their
    /// folder; otherwise weights interpolated into the command do, and are
    /// collected in `command_weights`.
    command_template: Option<bool>,
    command_weights: Vec<NodeId>,
    /// The sweep being lowered once for all its points, if any.
    trial: Option<symbolic::Trial>,
    /// The next sweep variable symbol.
    next_var: u32,
}

impl Lowerer<'_> {
    /// Records an error. Inside a call of a user function, the error points
    /// into the function's body; the help then names the call site too.
    fn error(&mut self, mut diag: Diagnostic) {
        if self.dry == 0 {
            if let Some(Call { name, site, .. }) = self.calls.first() {
                let in_stdlib = diag.span().is_some_and(|s| self.is_stdlib(s.file));
                let note = match (in_stdlib, diag.label.take()) {
                    // The user cannot edit the stdlib: point at their call,
                    // and say where in the stdlib it went wrong.
                    (true, Some((span, label))) if !self.is_stdlib(site.file) => {
                        diag.label = Some((*site, format!("in this call of `{name}`")));
                        format!("raised at {} ({label})", self.place(span))
                    }
                    (_, label) => {
                        diag.label = label;
                        format!("in the call of `{name}` at {}", self.place(*site))
                    }
                };
                diag.help = Some(match diag.help {
                    Some(help) => format!("{help}\n{note}"),
                    None => note,
                });
            }
        }
        self.diags.push(diag);
    }

    fn is_stdlib(&self, file: FileId) -> bool {
        let source = self.sources.get(file);
        source.path.is_none() && source.name.starts_with("std/")
    }

    /// `file:line:col` of a span's start.
    fn place(&self, span: Span) -> String {
        let (line, col) = self.sources.line_col(span.file, span.start);
        format!("{}:{line}:{col}", self.sources.get(span.file).name)
    }

    /// Lowers the root file.
    fn root_file(&mut self, root: FileId) {
        let text = self.sources.get(root).text.clone();
        match crate::syntax::parse(root, &text) {
            Ok(program) => {
                let mut env = Env::new(root);
                self.modules.insert(root, Frame::default());
                self.stmts(&mut env, &program.stmts);
            }
            Err(diag) => self.error(diag),
        }
    }

    fn resolve_path(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// One name for one file however its path is spelt (`a`, `./a`, `d/../a`,
/// an absolute path or a symbolic link): the canonical path where the file
/// or its folder exists, else the absolute path with `.` and `..` resolved.
pub fn path_identity(path: &std::path::Path) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return canonical;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut clean = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    match (clean.parent().map(std::fs::canonicalize), clean.file_name()) {
        (Some(Ok(parent)), Some(name)) => parent.join(name),
        _ => clean,
    }
}
