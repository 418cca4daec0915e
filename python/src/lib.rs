//! The `vic` Python package's native module (`vic._vic`): the compiler and trainer of the
//! `vic` library behind `vic.Model` and `vic.Fit`. What the bindings need beyond calls lives
//! in the library (`vic::train::rundir`: the run directory's record and metrics lines, where a
//! run's data comes from; `Trainer::with_exact_evidence`), so the Python API and `vic run`
//! write the same run directories. The exception classes are Python classes
//! (`python/vic/_errors.py`), raised from here with their attributes.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::BoundObject;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vic::data::{DataError, Dataset, RawArray};
use vic::diag::{Code, Diagnostic};
use vic::plot::CurveLog;
use vic::train::rundir::{self, MetricsLog};

mod agent;
use vic::train::{
    EngineChoice, EvalReport, Observer, PlanError, RunEnd, RunError, RunFlags, RunOptions, RunPlan,
    StepStats, TrainConfig, TrainError, Trainer,
};

// ---------------------------------------------------------------------------------------
// Errors

/// An instance of one of `vic._errors`' exception classes, as a `PyErr`.
fn vic_error<'py>(
    py: Python<'py>,
    class: &str,
    args: impl IntoPyObject<'py, Target = PyTuple>,
) -> PyErr {
    let made = args.into_pyobject(py).map_err(Into::into).and_then(|args| {
        let args: Bound<'py, PyTuple> = args.into_bound();
        py.import("vic._errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1(args))
    });
    match made {
        Ok(v) => PyErr::from_value(v),
        Err(e) => e,
    }
}

/// `vic::E031` → `E031`.
fn short(code: Code) -> &'static str {
    code.as_str().trim_start_matches("vic::")
}

/// A coded fault without a source: `VicError` or a subclass (`DataError`, `TrainError`).
fn coded(py: Python<'_>, class: &str, code: &str, message: String, help: &str) -> PyErr {
    let code = code.trim_start_matches("vic::").to_string();
    let report = if help.is_empty() {
        format!("vic::{code}: {message}")
    } else {
        format!("vic::{code}: {message}\n  help: {help}")
    };
    vic_error(py, class, (report, code, message, help.to_string()))
}

/// The (line, column) of byte `offset` in `source`, both from 1, columns in characters.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(source.len());
    while !source.is_char_boundary(off) {
        off -= 1;
    }
    let before = &source[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One diagnostic as a dict: code, severity, message, help, span and labels.
fn diag_dict<'py>(py: Python<'py>, d: &Diagnostic, source: &str) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("code", short(d.code))?;
    dict.set_item("severity", if d.is_error() { "error" } else { "warning" })?;
    dict.set_item("message", &d.message)?;
    dict.set_item("help", &d.help)?;
    dict.set_item("span", d.primary_span().map(|s| line_col(source, s.lo)))?;
    let labels = PyList::empty(py);
    for l in &d.labels {
        let ld = PyDict::new(py);
        ld.set_item("start", line_col(source, l.span.lo))?;
        ld.set_item("end", line_col(source, l.span.hi))?;
        ld.set_item("text", &l.text)?;
        labels.append(ld)?;
    }
    dict.set_item("labels", labels)?;
    Ok(dict)
}

/// `ModelError` for the diagnostics of a model: its code, message and span are the first
/// error's; `diagnostics` holds every one; `str()` is the rendered reports.
fn model_error(py: Python<'_>, diags: &[Diagnostic], name: &str, source: &str) -> PyErr {
    let shared = std::sync::Arc::new(vic::diag::Source::new(name, source));
    let rendered: Vec<String> = diags
        .iter()
        .map(|d| vic::diag::render(&vic::diag::Report::bound(d.clone(), &shared), false))
        .collect();
    let first = diags.iter().find(|d| d.is_error()).or(diags.first());
    let all = match diags
        .iter()
        .map(|d| diag_dict(py, d, source))
        .collect::<PyResult<Vec<_>>>()
    {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (code, message, help, span) = match first {
        Some(d) => (
            short(d.code).to_string(),
            d.message.clone(),
            d.help.clone(),
            d.primary_span().map(|s| line_col(source, s.lo)),
        ),
        None => (String::new(), String::new(), String::new(), None),
    };
    let report = rendered.join("\n");
    match PyList::new(py, all) {
        Ok(list) => vic_error(py, "ModelError", (report, code, message, help, span, list)),
        Err(e) => e,
    }
}

fn data_error(py: Python<'_>, e: &DataError) -> PyErr {
    let code = e.code().trim_start_matches("vic::").to_string();
    let report = e.report();
    vic_error(
        py,
        "DataError",
        (
            report,
            code,
            e.to_string(),
            e.help().to_string(),
            e.array().map(str::to_string),
        ),
    )
}

/// A training, evaluation or set-up fault (the codes of `vic run`).
fn train_error(py: Python<'_>, e: &TrainError, what: &str) -> PyErr {
    let code = match e {
        TrainError::NonFinite { .. } => Code::NonFinite,
        TrainError::Unsupported(_) => Code::Unsupported,
        TrainError::Checkpoint(_)
        | TrainError::Runtime(vic::runtime::RtError::Checkpoint { .. }) => Code::BadCheckpoint,
        TrainError::Runtime(vic::runtime::RtError::Io { .. }) => Code::Io,
        _ => Code::Backend,
    };
    let help = match code {
        Code::NonFinite => {
            "try a lower lr, clip=100, or a minimum scale (`min = 0.01` in `.split`)"
        }
        Code::Unsupported => {
            "use runtime=\"auto\" or \"reference\": the reference runtime runs every feature"
        }
        Code::BadCheckpoint => {
            "pass a run directory written by `vic run` or `Fit.save` for this model"
        }
        _ => "",
    };
    coded(
        py,
        "TrainError",
        code.as_str(),
        format!("{what}: {e}"),
        help,
    )
}

fn flag_error(py: Python<'_>, message: String, help: &str) -> PyErr {
    coded(py, "VicError", Code::BadFlag.as_str(), message, help)
}

fn io_error(py: Python<'_>, what: String, e: &std::io::Error) -> PyErr {
    coded(
        py,
        "VicError",
        Code::CannotWrite.as_str(),
        format!("{what}: {e}"),
        "check that the directory is writable and has space",
    )
}

// ---------------------------------------------------------------------------------------
// JSON and numpy

/// A JSON value as the Python object `json.loads` would make.
fn to_py(py: Python<'_>, v: &Value) -> PyResult<PyObject> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any().unbind(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any().unbind(),
            _ => n
                .as_f64()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// A numpy array (or anything `numpy.asarray` takes) as a row-major f32 [`RawArray`]:
/// float32/64, integers and bool as the file readers convert them, in C or Fortran order.
fn raw_array(py: Python<'_>, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<RawArray> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let dtype: String = arr.getattr("dtype")?.getattr("name")?.extract()?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    let data: Vec<f32> = match dtype.as_str() {
        "float32" => {
            let a: PyReadonlyArrayDyn<'_, f32> = arr.extract()?;
            // `as_slice` also accepts Fortran order (memory order); copy a C-ordered array
            // at once and read any other in logical (row-major) order.
            match a.as_slice() {
                Ok(s) if a.is_c_contiguous() => s.to_vec(),
                _ => a.as_array().iter().copied().collect(),
            }
        }
        "float64" => {
            let a: PyReadonlyArrayDyn<'_, f64> = arr.extract()?;
            a.as_array().iter().map(|&v| v as f32).collect()
        }
        _ if matches!(kind.as_str(), "i" | "u" | "b") => {
            let conv = arr.call_method1("astype", ("float32",))?;
            let a: PyReadonlyArrayDyn<'_, f32> = conv.extract()?;
            a.as_array().iter().copied().collect()
        }
        _ => {
            return Err(data_error(
                py,
                &DataError::UnsupportedDtype {
                    path: PathBuf::from(ARRAYS),
                    array: name.to_string(),
                    dtype,
                },
            ))
        }
    };
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    Ok(RawArray { shape, data, dtype })
}

/// What data from numpy arrays is called in messages.
const ARRAYS: &str = "<arrays>";

/// Where a run's data comes from.
enum DataArg {
    /// The model's own `data "…"`, or none for a control problem.
    Default,
    /// A file.
    File(PathBuf),
    /// numpy arrays by variable name (and `mask`).
    Arrays(BTreeMap<String, RawArray>),
}

fn data_arg(py: Python<'_>, data: Option<&Bound<'_, PyAny>>) -> PyResult<DataArg> {
    let Some(d) = data else {
        return Ok(DataArg::Default);
    };
    if d.is_none() {
        return Ok(DataArg::Default);
    }
    if let Ok(dict) = d.downcast::<PyDict>() {
        let mut raw = BTreeMap::new();
        for (k, v) in dict.iter() {
            let name: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("data keys must be variable names (str)"))?;
            let a = raw_array(py, &name, &v)?;
            raw.insert(name, a);
        }
        return Ok(DataArg::Arrays(raw));
    }
    match d.extract::<PathBuf>() {
        Ok(p) => Ok(DataArg::File(p)),
        Err(_) => Err(PyTypeError::new_err(
            "data must be None, a dict of numpy arrays by variable name, or a file path (.npz, .npy, .csv)",
        )),
    }
}

/// The validated dataset (`None` for a control problem) and the file it came from.
fn load_data(
    py: Python<'_>,
    model: &vic::Model,
    file: Option<&Path>,
    program: &vic::Program,
    data: DataArg,
) -> PyResult<(Option<Dataset>, Option<PathBuf>)> {
    let specs = vic::train::specs_of(program);
    let min_len = program.plan.max_lag as usize + 1;
    let from_file = |path: PathBuf| -> PyResult<(Option<Dataset>, Option<PathBuf>)> {
        let d = py
            .allow_threads(|| vic::data::load(&path, &specs, min_len))
            .map_err(|e| data_error(py, &e))?;
        Ok((Some(d), Some(path)))
    };
    match data {
        DataArg::Arrays(raw) => {
            if !rundir::needs_data(model.ir()) {
                return Err(flag_error(
                    py,
                    format!(
                        "model `{}` observes no data: it is a control problem",
                        model.ir().name
                    ),
                    "call fit() without data",
                ));
            }
            let d =
                Dataset::from_raw(ARRAYS, raw, &specs, min_len).map_err(|e| data_error(py, &e))?;
            Ok((Some(d), None))
        }
        DataArg::File(p) => {
            if !rundir::needs_data(model.ir()) {
                return Ok((None, None));
            }
            from_file(p)
        }
        DataArg::Default => {
            if !rundir::needs_data(model.ir()) {
                return Ok((None, None));
            }
            match rundir::data_path(model.ir(), file, None) {
                Some(p) => from_file(p),
                None => Err(coded(
                    py,
                    "DataError",
                    Code::BadFlag.as_str(),
                    format!(
                        "model `{}` observes data but no data was given",
                        model.ir().name
                    ),
                    "pass data={\"name\": array, …} or a data file, or add `data \"file.npz\"` to the model",
                )),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Model

fn compile(py: Python<'_>, source: &str, name: &str) -> PyResult<vic::Model> {
    compile_for(py, source, name, None)
}

/// Compiled for an environment's sizes (`dim O = env(obs, 3)`), as `vic agent` compiles it.
fn compile_for(
    py: Python<'_>,
    source: &str,
    name: &str,
    env: Option<&vic::parse::env::EnvShape>,
) -> PyResult<vic::Model> {
    match vic::compile_for(source, name, env) {
        Ok(m) => Ok(m),
        Err(f) => {
            let ds: Vec<Diagnostic> = f.diagnostics().cloned().collect();
            Err(model_error(py, &ds, name, source))
        }
    }
}

fn lower(py: Python<'_>, model: &vic::Model) -> PyResult<vic::Program> {
    vic::Program::new_spanned(model.ir(), &model.elbo(), &model.checked.spans)
        .map_err(|ds| model_error(py, &ds, &model.name, &model.source))
}

fn format_of(format: &str) -> PyResult<vic::Format> {
    match format {
        "text" => Ok(vic::Format::Text),
        "latex" => Ok(vic::Format::Latex),
        "json" => Ok(vic::Format::Json),
        other => Err(PyValueError::new_err(format!(
            "unknown format {other:?}: use \"text\", \"latex\" or \"json\""
        ))),
    }
}

/// A compiled `.vmodel`: parsed, checked, its ELBO derived.
#[pyclass(module = "vic._vic", name = "Model", frozen)]
struct Model {
    inner: vic::Model,
    file: Option<PathBuf>,
}

/// The options of a fit, as given.
#[derive(Clone)]
struct Settings {
    samples: usize,
    log_every: u64,
    eval_every: u64,
    checkpoint_every: u64,
    epochs: Option<u64>,
}

#[pymethods]
impl Model {
    /// Compile model source text (`name` labels diagnostics); raises `vic.ModelError` with every
    /// diagnostic when it does not compile.
    #[new]
    #[pyo3(signature = (source, name = "<string>"))]
    fn new(py: Python<'_>, source: &str, name: &str) -> PyResult<Self> {
        Ok(Model {
            inner: compile(py, source, name)?,
            file: None,
        })
    }

    /// Compile a `.vmodel` file; its `data "…"` is read relative to the file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let source = std::fs::read_to_string(&path).map_err(|e| {
            coded(
                py,
                "VicError",
                Code::Io.as_str(),
                format!("cannot read `{}`: {e}", path.display()),
                "check the path and its permissions",
            )
        })?;
        let name = path.display().to_string();
        Ok(Model {
            inner: compile(py, &source, &name)?,
            file: Some(path),
        })
    }

    /// The model's name (`model NAME { … }`).
    #[getter]
    fn name(&self) -> String {
        self.inner.ir().name.clone()
    }

    /// The source text.
    #[getter]
    fn source(&self) -> String {
        self.inner.source.clone()
    }

    /// The file the model was read from, if any.
    #[getter]
    fn file(&self) -> Option<PathBuf> {
        self.file.clone()
    }

    /// The checker's warnings, as `ModelError.diagnostics` entries.
    #[getter]
    fn warnings<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner
            .checked
            .warnings
            .iter()
            .map(|d| diag_dict(py, d, &self.inner.source))
            .collect()
    }

    /// The derived ELBO term by term, as `vic elbo` prints it: `format` is "text", "latex" or
    /// "json".
    #[pyo3(signature = (format = "text"))]
    fn elbo(&self, format: &str) -> PyResult<String> {
        Ok(self.inner.render_elbo(format_of(format)?, false))
    }

    /// The ELBO with its numbered step-by-step derivation (`vic elbo --steps`).
    #[pyo3(signature = (format = "text"))]
    fn derivation(&self, format: &str) -> PyResult<String> {
        Ok(self.inner.render_elbo(format_of(format)?, true))
    }

    /// The graphical model as Graphviz DOT (`vic graph`).
    fn graph(&self) -> String {
        self.inner.graph()
    }

    fn __repr__(&self) -> String {
        match &self.file {
            Some(f) => format!("vic.Model({:?} from {})", self.inner.ir().name, f.display()),
            None => format!("vic.Model({:?})", self.inner.ir().name),
        }
    }

    /// Train the model exactly as `vic run` does with the same options and return a `vic.Fit`.
    ///
    /// `data`: None (the model's own `data "…"`), a data file, or a dict of numpy arrays by
    /// variable name (float32/float64, C or Fortran order, optional `mask` (N, T)), validated as
    /// files are. Options are `vic run`'s flags. `callback(step, metrics)` runs after every
    /// step; `progress` shows a text bar. The GIL is released while training; Ctrl-C raises
    /// KeyboardInterrupt between steps (with `out`, after writing a resumable checkpoint:
    /// `fit(..., out=out, resume=True)` continues it).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (data = None, *, steps = None, epochs = None, batch = None, seed = 0,
        lr = 1e-3, samples = 10, holdout = None, horizon = None, clip = None,
        weight_decay = 0.0, warmup = 0, cosine = false, runtime = "auto", log_every = 10,
        eval_every = 100, checkpoint_every = 500, out = None, resume = false, force = false,
        callback = None, progress = None))]
    fn fit(
        &self,
        py: Python<'_>,
        data: Option<&Bound<'_, PyAny>>,
        steps: Option<u64>,
        epochs: Option<u64>,
        batch: Option<usize>,
        seed: u64,
        lr: f64,
        samples: usize,
        holdout: Option<f64>,
        horizon: Option<usize>,
        clip: Option<f64>,
        weight_decay: f64,
        warmup: u64,
        cosine: bool,
        runtime: &str,
        log_every: u64,
        eval_every: u64,
        checkpoint_every: u64,
        out: Option<PathBuf>,
        resume: bool,
        force: bool,
        callback: Option<PyObject>,
        progress: Option<bool>,
    ) -> PyResult<Fit> {
        // The checks of `vic run`'s flags.
        let positive = |name: &str, v: f64| -> PyResult<()> {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(flag_error(
                    py,
                    format!("{name} {v} is not a positive number"),
                    "e.g. lr=1e-3, clip=100",
                ))
            }
        };
        positive("lr", lr)?;
        if let Some(c) = clip {
            positive("clip", c)?;
        }
        if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
            return Err(flag_error(
                py,
                format!("weight_decay {weight_decay} is not a number ≥ 0"),
                "e.g. weight_decay=1e-4 (0, the default, for none)",
            ));
        }
        let holdout = holdout.unwrap_or(TrainConfig::default().holdout);
        if !(0.0..1.0).contains(&holdout) {
            return Err(flag_error(
                py,
                format!("holdout {holdout} is outside [0, 1)"),
                "e.g. holdout=0.1",
            ));
        }
        let counts = [
            ("batch", batch.map(|v| v as u64)),
            ("horizon", horizon.map(|v| v as u64)),
            ("steps", steps),
            ("epochs", epochs),
            ("samples", Some(samples as u64)),
            ("log_every", Some(log_every)),
            ("checkpoint_every", Some(checkpoint_every)),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, v)| *v == Some(0)) {
            return Err(flag_error(
                py,
                format!("{name}=0: the count must be at least 1"),
                "e.g. steps=2000, batch=128",
            ));
        }
        let max = vic::limits::MAX_COUNT;
        for (name, v) in &counts[..2] {
            if v.is_some_and(|v| v > max) {
                return Err(flag_error(
                    py,
                    format!("{name} is larger than {max}"),
                    "use a smaller value",
                ));
            }
        }
        if horizon.is_some() && !self.inner.ir().is_control() {
            return Err(flag_error(
                py,
                PlanError::HorizonForData {
                    model: self.inner.ir().name.clone(),
                }
                .to_string(),
                "drop horizon: a model fitted to data takes its sequence length from its data",
            ));
        }
        let engine = match runtime {
            "auto" => EngineChoice::Auto,
            "fused" => EngineChoice::Fused,
            "reference" => EngineChoice::Reference,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown runtime {other:?}: use \"auto\", \"fused\" or \"reference\""
                )))
            }
        };
        if resume && out.is_none() {
            return Err(flag_error(
                py,
                "resume=True needs out=DIR, the run directory to continue".into(),
                "pass out= the directory of the interrupted run",
            ));
        }
        let program = lower(py, &self.inner)?;
        let arg = data_arg(py, data)?;
        let (data, data_file) = load_data(py, &self.inner, self.file.as_deref(), &program, arg)?;
        let flags = RunFlags {
            config: TrainConfig {
                lr,
                weight_decay,
                clip,
                warmup,
                seed,
                engine,
                ..TrainConfig::default()
            },
            batch,
            steps,
            epochs,
            horizon,
            cosine,
            holdout,
        };
        let plan = RunPlan::resolve(&flags, self.inner.ir(), data.as_ref())
            .map_err(|e| flag_error(py, e.to_string(), "pass one of steps= and epochs="))?;
        let mut trainer = Owned(
            Trainer::new(program, data, plan.config.clone())
                .map_err(|e| train_error(py, &e, "cannot set up the model"))?,
        );
        let settings = Settings {
            samples,
            log_every,
            eval_every,
            checkpoint_every,
            epochs,
        };
        let labels = vic::render::label::term_labels(&trainer.0.program.elbo);
        let engine = trainer.0.engine();
        let mut history = Vec::new();
        let mut log = None;
        let ckpt = out.as_ref().map(|d| d.join(rundir::CHECKPOINT));
        let mut _lock = None;
        if let Some(dir) = &out {
            _lock = Some(prepare_out(py, dir, resume, force)?);
            let fit_record = FitRecord {
                model: &self.inner,
                file: self.file.as_deref(),
                data: data_file.as_deref(),
                plan: &plan,
                settings: &settings,
                engine: &engine,
                resumed_from: resume.then(|| dir.display().to_string()),
            };
            write_record(py, dir, &fit_record)?;
            let metrics = dir.join(rundir::METRICS);
            if resume {
                history = read_history(&metrics);
            }
            log =
                Some(MetricsLog::open(&metrics, resume).map_err(|e| {
                    io_error(py, format!("cannot write `{}`", metrics.display()), &e)
                })?);
        }
        let opts = RunOptions {
            total: plan.total,
            checkpoint: ckpt.clone(),
            checkpoint_every,
            eval_every,
            final_samples: samples,
            resume: if resume { ckpt.clone() } else { None },
        };
        let progress = match progress {
            Some(p) => p,
            None => interactive(py),
        };
        let mut obs = PyObserver {
            bar: progress.then(|| Bar::new(plan.total)),
            labels: labels.clone(),
            total: plan.total,
            log_every,
            callback,
            history,
            log,
            curves: CurveLog::new(labels.len()),
            error: None,
        };
        let outcome = py.allow_threads(|| trainer.get().run(&opts, &mut obs));
        if let Some(bar) = &obs.bar {
            bar.finish(py);
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if let RunError::Step { step, error } = &e {
                    if let Some(log) = obs.log.as_mut() {
                        log.write(rundir::error_line(*step, &error.to_string()));
                    }
                }
                return Err(run_error(py, &e));
            }
        };
        if let Some(err) = obs.error.take() {
            // Ctrl-C or an exception in the callback: the run stopped after a checkpoint.
            return Err(err);
        }
        let Some(report) = outcome.report.filter(|_| outcome.end == RunEnd::Finished) else {
            return Err(PyValueError::new_err("the run was interrupted"));
        };
        let heldout = trainer.0.heldout.is_some();
        let line = rundir::final_line(&labels, outcome.last_step, heldout, &report);
        obs.curves
            .evaluated(outcome.last_step, report.elbo, report.stderr);
        obs.record(line);
        let st = FitState {
            trainer,
            model: self.inner.clone(),
            file: self.file.clone(),
            data_file,
            plan,
            settings,
            engine,
            history: obs.history,
            curves: obs.curves,
            svg: None,
            report: Some(report),
            seconds: outcome.seconds,
        };
        if let Some(dir) = &out {
            draw_curves(py, dir, &st);
        }
        Ok(Fit { st: Mutex::new(st) })
    }
}

/// A run directory for a fit, claimed as `vic run` claims it ([`rundir::claim`]: its lock
/// file, `vic::E094` while another run holds it, `vic::E095` when it holds a run and the fit
/// neither resumes nor forces; a forced fit removes the earlier run's files).
fn prepare_out(py: Python<'_>, dir: &Path, resume: bool, force: bool) -> PyResult<rundir::RunLock> {
    if resume && !dir.join(rundir::CHECKPOINT).exists() {
        return Err(coded(
            py,
            "TrainError",
            Code::BadCheckpoint.as_str(),
            format!("`{}` holds no checkpoint to resume", dir.display()),
            "pass the directory of an interrupted run as out=",
        ));
    }
    prepare(py, dir, resume, force, &[])
}

/// [`rundir::prepare`] (create, claim, remove `outputs` when a new run forces) with its error
/// as a `VicError` and its note as a Python warning.
fn prepare(
    py: Python<'_>,
    dir: &Path,
    resume: bool,
    force: bool,
    outputs: &[&str],
) -> PyResult<rundir::RunLock> {
    let mut notes = Vec::new();
    let lock = rundir::prepare(dir, resume, force, outputs, &mut |n| {
        notes.push(n.to_string())
    });
    for n in notes {
        let warn = py.import("warnings")?.getattr("warn")?;
        warn.call1((n,))?;
    }
    lock.map_err(|e| coded(py, "VicError", e.code.as_str(), e.message, &e.help))
}

/// Draws `elbo.svg` into `dir` as `vic run` draws it (a warning on failure, as there).
fn draw_curves(py: Python<'_>, dir: &Path, st: &FitState) {
    if st.curves.is_empty() {
        // A loaded run: its own picture.
        if let Some(svg) = &st.svg {
            if let Err(e) = rundir::write_atomic(&dir.join(rundir::PLOT), svg) {
                write_stderr(py, &format!("warning: could not write elbo.svg: {e}\n"));
            }
        }
        return;
    }
    let tr = &st.trainer.0;
    let eval_name = match (&tr.heldout, &tr.train) {
        (Some(_), _) => "held-out",
        (None, Some(_)) => "evaluation (training data)",
        (None, None) => "evaluation",
    };
    let labels = vic::render::label::term_labels(&tr.program.elbo);
    let title = format!("vic run {}", st.model.ir().name);
    if let Err(e) = st
        .curves
        .draw(&dir.join(rundir::PLOT), &title, eval_name, &labels)
    {
        write_stderr(py, &format!("warning: could not write elbo.svg: {e}\n"));
    }
}

fn run_error(py: Python<'_>, e: &RunError) -> PyErr {
    match e {
        RunError::Resume { path, error } => coded(
            py,
            "TrainError",
            Code::BadCheckpoint.as_str(),
            format!("cannot resume from `{}`: {error}", path.display()),
            "pass a run directory written by `vic run` or `Fit.save` for this model",
        ),
        RunError::Step { step, error } => {
            train_error(py, error, &format!("training failed at step {step}"))
        }
        RunError::Checkpoint { error, .. } => train_error(py, error, "cannot write the checkpoint"),
        RunError::Evaluation(error) => train_error(py, error, "the final evaluation failed"),
    }
}

/// What `config.json` of a fit records.
struct FitRecord<'a> {
    model: &'a vic::Model,
    file: Option<&'a Path>,
    data: Option<&'a Path>,
    plan: &'a RunPlan,
    settings: &'a Settings,
    engine: &'a str,
    resumed_from: Option<String>,
}

fn write_record(py: Python<'_>, dir: &Path, r: &FitRecord) -> PyResult<()> {
    let mut command = vec!["python".to_string()];
    if let Ok(argv) = py
        .import("sys")
        .and_then(|s| s.getattr("argv"))
        .and_then(|a| a.extract::<Vec<String>>())
    {
        command.extend(argv);
    }
    let record = rundir::Record {
        command,
        model: &r.model.ir().name,
        model_file: r
            .file
            .map_or_else(|| rundir::SOURCE.to_string(), |f| f.display().to_string()),
        data: r.data,
        plan: r.plan,
        epochs: r.settings.epochs,
        engine: r.engine,
        device: "cpu",
        samples: r.settings.samples,
        log_every: r.settings.log_every,
        eval_every: r.settings.eval_every,
        checkpoint_every: r.settings.checkpoint_every,
        resumed_from: r.resumed_from.clone(),
    };
    rundir::write_record(dir, &record, &r.model.source).map_err(|e| {
        io_error(
            py,
            format!("cannot write the run's record in `{}`", dir.display()),
            &e,
        )
    })
}

/// The lines of a `metrics.jsonl` (none when it cannot be read).
fn read_history(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Sees every step of a fit: `metrics.jsonl` rows into the history (and the file), the
/// callback, and Python's signals (Ctrl-C) between steps.
struct PyObserver {
    /// The text progress bar, when asked for.
    bar: Option<Bar>,
    labels: Vec<String>,
    total: u64,
    log_every: u64,
    callback: Option<PyObject>,
    /// The rows as JSON text, as `metrics.jsonl` holds them (Python's `json` reads them back
    /// exactly; serde_json's default parser may not round-trip the last bit of a float).
    history: Vec<String>,
    log: Option<MetricsLog>,
    /// The curves of `elbo.svg`, fed as `vic run`'s progress feeds them.
    curves: CurveLog,
    error: Option<PyErr>,
}

impl PyObserver {
    /// A metrics row: stamped (and written), kept in the history; returned as kept.
    fn record(&mut self, line: Value) -> Value {
        let line = match self.log.as_mut() {
            Some(log) => log.write(line),
            None => {
                let mut l = line;
                rundir::stamp(&mut l);
                l
            }
        };
        self.history.push(line.to_string());
        line
    }
}

impl Observer for PyObserver {
    fn should_stop(&mut self) -> bool {
        if self.error.is_some() {
            return true;
        }
        Python::with_gil(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.error = Some(e);
                true
            }
        })
    }

    fn stepped(&mut self, s: &StepStats) {
        let line = rundir::step_line(&self.labels, s);
        let keep = s.step.is_multiple_of(self.log_every.max(1)) || s.step == self.total;
        self.curves.stepped(s.step, s.elbo, &s.terms, keep);
        let line = if keep {
            self.record(line)
        } else {
            let mut l = line;
            rundir::stamp(&mut l);
            l
        };
        if let Some(bar) = &mut self.bar {
            bar.stepped(s);
        }
        if let Some(cb) = &self.callback {
            let r = Python::with_gil(|py| -> PyResult<()> {
                let metrics = to_py(py, &line)?;
                cb.call1(py, (s.step, metrics))?;
                Ok(())
            });
            if let Err(e) = r {
                self.error.get_or_insert(e);
            }
        }
    }

    fn evaluated(&mut self, step: u64, r: &EvalReport) {
        let line = rundir::eval_line(&self.labels, step, r);
        self.curves.evaluated(step, r.elbo, r.stderr);
        self.record(line);
    }
}

/// Whether a fit shows its progress by default: in a terminal or a Jupyter kernel.
fn interactive(py: Python<'_>) -> bool {
    let tty = py
        .import("sys")
        .and_then(|s| s.getattr("stderr"))
        .and_then(|e| e.call_method0("isatty"))
        .and_then(|t| t.extract::<bool>())
        .unwrap_or(false);
    let jupyter = py
        .import("sys")
        .and_then(|s| s.getattr("modules"))
        .and_then(|m| m.contains("ipykernel"))
        .unwrap_or(false);
    tty || jupyter
}

/// A one-line progress bar on `sys.stderr` (redrawn with `\r`, which terminals and Jupyter
/// both honour): steps, rate, ETA and the running mean of the ELBO.
struct Bar {
    total: u64,
    every: u64,
    start: std::time::Instant,
    first: Option<u64>,
    running: Option<f64>,
}

impl Bar {
    fn new(total: u64) -> Bar {
        Bar {
            total,
            every: (total / 200).max(1),
            start: std::time::Instant::now(),
            first: None,
            running: None,
        }
    }

    fn stepped(&mut self, s: &StepStats) {
        let first = *self.first.get_or_insert(s.step.saturating_sub(1));
        self.running = Some(match self.running {
            None => s.elbo,
            Some(r) => 0.95 * r + 0.05 * s.elbo,
        });
        if !(s.step.is_multiple_of(self.every) || s.step == self.total) {
            return;
        }
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = (s.step - first) as f64 / secs;
        let left = self.total.saturating_sub(s.step) as f64 / rate.max(1e-9);
        let width = 30usize;
        let done = (width as u64 * s.step / self.total.max(1)) as usize;
        let line = format!(
            "\r[{}{}] {}/{} {:.0} steps/s ETA {:.0} s ELBO {:.3}",
            "#".repeat(done.min(width)),
            "-".repeat(width - done.min(width)),
            s.step,
            self.total,
            rate,
            left,
            self.running.unwrap_or(s.elbo)
        );
        Python::with_gil(|py| write_stderr(py, &line));
    }

    fn finish(&self, py: Python<'_>) {
        if self.first.is_some() {
            write_stderr(py, "\n");
        }
    }
}

fn write_stderr(py: Python<'_>, text: &str) {
    if let Ok(err) = py.import("sys").and_then(|s| s.getattr("stderr")) {
        let _ = err.call_method1("write", (text,));
        let _ = err.call_method0("flush");
    }
}

// ---------------------------------------------------------------------------------------
// Fit

/// A trainer the bindings own. `Trainer` is not `Send` only because of what a distributed
/// run adds (`Trainer::distribute`'s communicator, which the bindings never call) and the
/// fused engine's pointers into buffers the trainer itself owns.
struct Owned(Trainer);

// SAFETY: the bindings never distribute a trainer, so it holds no communicator; the fused
// engine's raw pointers point into memory owned by the same trainer and move with it. The
// trainer is only ever reached through `&mut` (a `Mutex` in `Fit`, a local in `fit`), so no
// two threads use it at once; `allow_threads` runs its closure on the calling thread.
unsafe impl Send for Owned {}

/// What a call hands to the closure it runs without the GIL (`allow_threads`): a trainer or an
/// agent with what it works on, by reference.
struct Unsent<T>(T);

// SAFETY: `allow_threads` runs its closure on the calling thread, which keeps the only
// references to what is inside for as long as the closure runs; Python objects in it are
// reached only under `Python::with_gil`. What is inside is not `Send` for the reasons `Owned`
// gives (the fused engine's pointers into buffers their owner owns).
unsafe impl<T> Send for Unsent<T> {}

impl Owned {
    fn get(&mut self) -> &mut Trainer {
        &mut self.0
    }
}

struct FitState {
    trainer: Owned,
    model: vic::Model,
    file: Option<PathBuf>,
    data_file: Option<PathBuf>,
    plan: RunPlan,
    settings: Settings,
    /// The runtime when training started, as `config.json` records it.
    engine: String,
    history: Vec<String>,
    /// The curves of `elbo.svg` (of this process's training: none for a loaded run).
    curves: CurveLog,
    /// The `elbo.svg` of a loaded run directory, written again by `save`.
    svg: Option<Vec<u8>>,
    report: Option<EvalReport>,
    seconds: f64,
}

/// A trained model: parameters, training history, evaluation, draws, and its run directory.
#[pyclass(module = "vic._vic", name = "Fit", frozen)]
struct Fit {
    st: Mutex<FitState>,
}

impl Fit {
    fn lock(&self) -> std::sync::MutexGuard<'_, FitState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn params_dict<'py>(py: Python<'py>, st: &FitState, raw: bool) -> PyResult<Bound<'py, PyDict>> {
    let all = vic::train::named_params(&st.trainer.0.program.model, &st.trainer.0.store);
    let d = PyDict::new(py);
    for p in all {
        let v = if raw { p.raw } else { p.value };
        let a = PyArray1::from_vec(py, v).reshape(p.shape.clone())?;
        d.set_item(p.name, a)?;
    }
    Ok(d)
}

#[pymethods]
impl Fit {
    /// The learned values by name, float64, constraints applied (`vic params`' `value`).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        params_dict(py, &self.lock(), false)
    }

    /// The unconstrained values the optimiser updates (`vic params`' `raw`).
    #[getter]
    fn raw_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        params_dict(py, &self.lock(), true)
    }

    /// The rows of `metrics.jsonl` as dicts (training rows, held-out evaluations, the final one).
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let loads = py.import("json")?.getattr("loads")?;
        let rows = self
            .lock()
            .history
            .iter()
            .map(|l| loads.call1((l,)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }

    /// The final evaluation of the fit (None for a loaded fit).
    #[getter]
    fn report(&self, py: Python<'_>) -> PyResult<PyObject> {
        match &self.lock().report {
            Some(r) => to_py(py, &serde_json::to_value(r).unwrap_or_default()),
            None => Ok(py.None()),
        }
    }

    /// Optimiser steps taken.
    #[getter]
    fn step(&self) -> u64 {
        self.lock().trainer.0.step
    }

    /// The runtime that trains (fused or reference, and why).
    #[getter]
    fn runtime(&self) -> String {
        self.lock().trainer.0.engine()
    }

    /// Wall-clock seconds of the training loop.
    #[getter]
    fn seconds(&self) -> f64 {
        self.lock().seconds
    }

    /// The model.
    #[getter]
    fn model(&self) -> Model {
        let st = self.lock();
        Model {
            inner: st.model.clone(),
            file: st.file.clone(),
        }
    }

    /// The readable names of the ELBO's terms (the keys of `terms`).
    #[getter]
    fn term_labels(&self) -> Vec<String> {
        vic::render::label::term_labels(&self.lock().trainer.0.program.elbo)
    }

    /// Estimate the ELBO with `samples` draws per sequence, as `vic eval --json`: elbo, stderr,
    /// per-term means, and log_evidence and gap where p is linear-Gaussian (`iwae=K` adds the
    /// IWAE-K bound). `data` as in `Model.fit`; by default the held-out split.
    #[pyo3(signature = (data = None, samples = 100, seed = None, iwae = None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        data: Option<&Bound<'_, PyAny>>,
        samples: usize,
        seed: Option<u64>,
        iwae: Option<usize>,
    ) -> PyResult<PyObject> {
        if samples == 0 || iwae == Some(0) {
            return Err(flag_error(
                py,
                "samples and iwae must be ≥ 1".into(),
                "e.g. samples=100, iwae=100",
            ));
        }
        let arg = data_arg(py, data)?;
        let mut st = self.lock();
        let given = match arg {
            DataArg::Default => None,
            arg => {
                let program = lower(py, &st.model)?;
                load_data(py, &st.model, st.file.as_deref(), &program, arg)?.0
            }
        };
        if given.is_none()
            && rundir::needs_data(st.model.ir())
            && st.trainer.0.train.is_none()
            && st.trainer.0.heldout.is_none()
        {
            return Err(coded(
                py,
                "DataError",
                Code::BadFlag.as_str(),
                "this fit has no data to evaluate on (it was loaded without its data)".into(),
                "pass data= (a dict of numpy arrays or a data file)",
            ));
        }
        let seed = seed.unwrap_or(st.trainer.0.cfg.seed);
        let st = &mut *st;
        let tr = &mut st.trainer;
        let r = py
            .allow_threads(|| tr.get().evaluate(given.as_ref(), samples, seed))
            .map_err(|e| train_error(py, &e, "evaluation failed"))?;
        let hint = iwae.is_none().then_some("pass iwae=K to estimate it");
        let mut r = tr.0.with_exact_evidence(r, given.as_ref(), hint);
        if let Some(k) = iwae {
            let w = py
                .allow_threads(|| {
                    tr.get()
                        .evaluate_iwae(k, given.as_ref(), samples, seed.wrapping_add(1))
                })
                .map_err(|e| train_error(py, &e, "the IWAE evaluation failed"))?;
            r = r.with_iwae(k, &w);
        }
        to_py(py, &serde_json::to_value(&r).unwrap_or_default())
    }

    /// Draw `n` sequences from p as `vic sample` does: `condition=K` follows the posterior on the
    /// first K steps of the data (or `condition={arrays}`), then p runs open loop to `horizon`.
    /// Returns {name: float32 array}.
    #[pyo3(signature = (n = 16, *, condition = None, horizon = None, data = None, seed = None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        condition: Option<&Bound<'py, PyAny>>,
        horizon: Option<usize>,
        data: Option<&Bound<'py, PyAny>>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if n == 0 || n as u64 > vic::limits::MAX_COUNT {
            return Err(flag_error(
                py,
                format!(
                    "n={n}: draw between 1 and {} sequences",
                    vic::limits::MAX_COUNT
                ),
                "e.g. n=16",
            ));
        }
        if horizon == Some(0) {
            return Err(flag_error(
                py,
                "horizon=0: draw at least one step".into(),
                "e.g. horizon=50",
            ));
        }
        // `condition`: a number of steps of the data, or the arrays to condition on.
        let (steps, cond_data) = match condition {
            None => (0, None),
            Some(c) if c.is_none() => (0, None),
            Some(c) => match c.extract::<usize>() {
                Ok(k) => (k, None),
                Err(_) => {
                    if data.is_some_and(|d| !d.is_none()) {
                        return Err(PyValueError::new_err(
                            "pass the arrays to condition on as condition= or as data=, not both",
                        ));
                    }
                    (usize::MAX, Some(c.clone()))
                }
            },
        };
        let st = self.lock();
        let given = match cond_data.as_ref().or(data) {
            None => None,
            Some(d) => {
                let arg = data_arg(py, Some(d))?;
                match arg {
                    DataArg::Default => None,
                    arg => {
                        let program = lower(py, &st.model)?;
                        load_data(py, &st.model, st.file.as_deref(), &program, arg)?.0
                    }
                }
            }
        };
        let tr = &st.trainer.0;
        let d = given.as_ref().or(tr.train.as_ref()).or(tr.heldout.as_ref());
        let condition = if steps == usize::MAX {
            d.and_then(|d| d.t).unwrap_or(0)
        } else {
            steps
        };
        let seed = seed.unwrap_or(tr.cfg.seed);
        let draws = tr.draw(n, horizon, condition, d, seed).map_err(|e| {
            use vic::train::SampleError as E;
            let (code, help) = match &e {
                E::ConditionTooLong { .. } => (
                    Code::BadFlag,
                    "the draws follow the posterior for `condition` steps, then run p open loop: use a horizon longer than condition".to_string(),
                ),
                E::ConditionNeedsData { .. } => (
                    Code::BadFlag,
                    "pass data= with sequences at least as long as condition".to_string(),
                ),
                E::CannotCondition { .. } => (
                    Code::BadFlag,
                    "draw from the prior (drop condition), or draw the posterior's reconstructions with Fit.posterior_predictive".to_string(),
                ),
                E::Improper { written: name, .. } => (
                    Code::CannotSample,
                    format!("Fit.sample draws from p: give `{name}` a proper prior (e.g. `{name} ~ Normal(0, 1)`) to sample this model"),
                ),
                E::Failed { .. } => (
                    Code::CannotSample,
                    "Fit.sample draws every latent and action from p: give each a proper prior (a Flat prior has no draws), or follow the posterior for the data's steps with condition=".to_string(),
                ),
            };
            coded(py, "VicError", code.as_str(), e.to_string(), &help)
        })?;
        let out = PyDict::new(py);
        for (name, shape, values) in draws.named(&tr.program.model) {
            let a = PyArray1::from_vec(py, values).reshape(shape)?;
            out.set_item(name, a)?;
        }
        Ok(out)
    }

    /// Posterior predictive draws as `vic sample --posterior` makes them: for each of the first
    /// `n` sequences of `data` (default: the fit's data file, else its training data), `draws`
    /// reconstructions x̃ ~ p(x | z), z ~ q(z | x), from the noise stream of `seed` (default: the
    /// fit's). Returns {name: float32 array}: each variable's draws (draws, n, T, size) or
    /// (draws, n, size), each observed variable's data as `<name>_data`, and with `one_step` the
    /// one-step predictions `<name>_onestep` (NaN at the first step) — the arrays of the `.npz`
    /// that `vic sample --posterior --draws K --seed S` writes for the same run, bit for bit.
    #[pyo3(signature = (data = None, *, n = 16, draws = 100, one_step = false, seed = None))]
    fn posterior_predictive<'py>(
        &self,
        py: Python<'py>,
        data: Option<&Bound<'py, PyAny>>,
        n: usize,
        draws: usize,
        one_step: bool,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let max = vic::limits::MAX_COUNT;
        if n == 0 || n as u64 > max {
            return Err(flag_error(
                py,
                format!("n={n}: draw for between 1 and {max} sequences"),
                "e.g. n=16",
            ));
        }
        if draws < 2 || draws as u64 > max {
            return Err(flag_error(
                py,
                format!("draws={draws} is too few for predictive intervals"),
                "e.g. draws=100",
            ));
        }
        let st = self.lock();
        let arg = data_arg(py, data)?;
        let given = match arg {
            DataArg::Default => match &st.data_file {
                Some(f) => {
                    let program = lower(py, &st.model)?;
                    load_data(py, &st.model, None, &program, DataArg::File(f.clone()))?.0
                }
                None => None,
            },
            arg => {
                let program = lower(py, &st.model)?;
                load_data(py, &st.model, st.file.as_deref(), &program, arg)?.0
            }
        };
        let tr = &st.trainer.0;
        let Some(d) = given.as_ref().or(tr.train.as_ref()).or(tr.heldout.as_ref()) else {
            return Err(flag_error(
                py,
                "the posterior predictive needs data to condition on".into(),
                "pass data= (a dict of arrays or a data file)",
            ));
        };
        let (seqs, tt) = tr.posterior_extent(d, n).map_err(|_| {
            flag_error(
                py,
                "the posterior predictive needs an observed variable; this is a control problem"
                    .into(),
                "draw rollouts with Fit.sample",
            )
        })?;
        let need = vic::limits::run_bytes(
            &tr.program.model,
            seqs.saturating_mul(draws) as u64,
            tt as u64,
        );
        let have = vic::limits::available_bytes();
        if need > have {
            return Err(coded(
                py,
                "TrainError",
                Code::OutOfMemory.as_str(),
                format!(
                    "the posterior predictive needs about {} ({} sequences × {tt} steps at once), but {} is available",
                    vic::limits::human(need),
                    seqs.saturating_mul(draws),
                    vic::limits::human(have)
                ),
                "use a smaller n or fewer draws",
            ));
        }
        let seed = seed.unwrap_or(tr.cfg.seed);
        let job = Unsent((tr, d));
        let drawn = py.allow_threads(move || {
            let job = job;
            let (tr, d) = job.0;
            tr.posterior_draws(d, n, draws, one_step, seed)
        });
        let drawn = drawn.map_err(|e| match e {
            vic::train::PredictiveError::Draw { what, error } => {
                train_error(py, &error, &format!("{what} sampling failed"))
            }
            vic::train::PredictiveError::OneStep(why) => flag_error(
                py,
                format!("one_step cannot run for this model: {why}"),
                "drop one_step (the reconstructions need no open-loop step)",
            ),
            e @ vic::train::PredictiveError::Control => {
                flag_error(py, e.to_string(), "draw rollouts with Fit.sample")
            }
        })?;
        let out = PyDict::new(py);
        for (name, shape, values) in drawn.arrays {
            let a = PyArray1::from_vec(py, values).reshape(shape)?;
            out.set_item(name, a)?;
        }
        Ok(out)
    }

    /// Writes the run directory (`config.json`, `model.vmodel`, `checkpoint.safetensors`,
    /// `metrics.jsonl`).
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<()> {
        let st = self.lock();
        // Created, and held while it is written, as a run holds it (no emptiness check: saving
        // again replaces the earlier save).
        let _lock = prepare(py, &dir, true, false, &[])?;
        st.trainer
            .0
            .save(&dir.join(rundir::CHECKPOINT))
            .map_err(|e| train_error(py, &e, "cannot write the checkpoint"))?;
        let rec = FitRecord {
            model: &st.model,
            file: st.file.as_deref(),
            data: st.data_file.as_deref(),
            plan: &st.plan,
            settings: &st.settings,
            engine: &st.engine,
            resumed_from: None,
        };
        write_record(py, &dir, &rec)?;
        let text: String = st.history.iter().map(|l| format!("{l}\n")).collect();
        let metrics = dir.join(rundir::METRICS);
        rundir::write_atomic(&metrics, text.as_bytes())
            .map_err(|e| io_error(py, format!("cannot write `{}`", metrics.display()), &e))?;
        draw_curves(py, &dir, &st);
        Ok(())
    }

    /// Load a run directory written by `Fit.save` or `vic run` (its data: the recorded file, or
    /// `data`).
    #[staticmethod]
    #[pyo3(signature = (dir, data = None))]
    fn load(py: Python<'_>, dir: PathBuf, data: Option<&Bound<'_, PyAny>>) -> PyResult<Fit> {
        let (dir, ckpt) = if dir.is_dir() {
            let c = dir.join(rundir::CHECKPOINT);
            (dir, c)
        } else {
            let d = dir
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            (d, dir)
        };
        let source_path = dir.join(rundir::SOURCE);
        let source = std::fs::read_to_string(&source_path).map_err(|e| {
            coded(
                py,
                "VicError",
                Code::Io.as_str(),
                format!("cannot read `{}`: {e}", source_path.display()),
                "pass a run directory written by `vic run` or `Fit.save`",
            )
        })?;
        let model = compile(py, &source, &source_path.display().to_string())?;
        let config: Value = std::fs::read_to_string(dir.join(rundir::CONFIG))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let cfg: TrainConfig = config
            .get("train")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        let file = config
            .get("model_file")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .filter(|p| p.exists());
        let program = lower(py, &model)?;
        let arg = data_arg(py, data)?;
        let recorded = config
            .get("data")
            .and_then(Value::as_str)
            .map(PathBuf::from);
        let arg = match arg {
            DataArg::Default => match recorded.filter(|p| p.exists()) {
                Some(p) => DataArg::File(p),
                None => DataArg::Default,
            },
            a => a,
        };
        let (data, data_file) = match arg {
            DataArg::Default => (None, None),
            a => load_data(py, &model, file.as_deref(), &program, a)?,
        };
        let num = |k: &str| config.get(k).and_then(Value::as_u64);
        let plan = RunPlan {
            config: cfg.clone(),
            total: num("steps").unwrap_or(0),
            sequence_steps: num("sequence_steps").unwrap_or(1) as usize,
            train_rows: num("train_rows").map(|v| v as usize),
        };
        let settings = Settings {
            samples: num("samples").unwrap_or(10) as usize,
            log_every: num("log_every").unwrap_or(10),
            eval_every: num("eval_every").unwrap_or(100),
            checkpoint_every: num("checkpoint_every").unwrap_or(500),
            epochs: num("epochs"),
        };
        let mut trainer = Trainer::new(program, data, cfg)
            .map_err(|e| train_error(py, &e, "cannot set up the model"))?;
        trainer.load_params(&ckpt).map_err(|e| {
            coded(
                py,
                "TrainError",
                Code::BadCheckpoint.as_str(),
                format!("cannot load `{}`: {e}", ckpt.display()),
                "pass a run directory written by `vic run` or `Fit.save` for this model",
            )
        })?;
        let history = read_history(&dir.join(rundir::METRICS));
        let report = None;
        let engine = config
            .get("runtime")
            .and_then(Value::as_str)
            .map_or_else(|| trainer.engine(), str::to_string);
        Ok(Fit {
            st: Mutex::new(FitState {
                trainer: Owned(trainer),
                model,
                file,
                data_file,
                plan,
                settings,
                engine,
                history,
                curves: CurveLog::default(),
                svg: std::fs::read(dir.join(rundir::PLOT)).ok(),
                report,
                seconds: 0.0,
            }),
        })
    }

    fn __repr__(&self) -> String {
        let st = self.lock();
        format!(
            "vic.Fit({:?}, step {}, runtime {})",
            st.model.ir().name,
            st.trainer.0.step,
            st.trainer.0.engine()
        )
    }
}

#[pymodule]
fn _vic(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Model>()?;
    m.add_class::<Fit>()?;
    m.add_function(wrap_pyfunction!(agent::agent, m)?)?;
    Ok(())
}
