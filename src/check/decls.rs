//! Declarations: dims, consts, params, variables, nets, inits, optimality, data.

use super::consts::CVal;
use super::env::{Ck, Sym};
use super::expr::{Cx, Time};
use crate::diag::{Code, Diagnostic};
use crate::ir::*;
use crate::parse::ast::{self, Arg, ExprKind, Item, RoleAst, TypeAst};

impl Ck {
    /// Register every declared name first, so declarations may appear in any order
    /// (dims and consts are evaluated in source order).
    pub fn register(&mut self, items: &[Item]) {
        for item in items {
            match item {
                Item::Dims(bs) => {
                    for b in bs {
                        let id = self.model.dims.len();
                        if self.declare(&b.name, Sym::Dim(id)) {
                            self.model.dims.push(Dim {
                                name: b.name.name.clone(),
                                value: 0,
                            });
                            self.dim_spans.push(b.name.span);
                        }
                    }
                }
                Item::Consts(bs) => {
                    for b in bs {
                        let id = self.model.consts.len();
                        if self.declare(&b.name, Sym::Const(id)) {
                            self.model.consts.push(Const {
                                name: b.name.name.clone(),
                                shape: Shape::scalar(),
                                values: vec![],
                            });
                            self.const_spans.push(b.name.span);
                        }
                    }
                }
                Item::Var {
                    name, role, timed, ..
                } => {
                    let id = self.model.vars.len();
                    if self.declare(name, Sym::Var(id)) {
                        let role = match role {
                            RoleAst::Observed => Role::Observed,
                            RoleAst::Latent => Role::Latent,
                            RoleAst::Input => Role::Input,
                            RoleAst::State => Role::State,
                        };
                        self.model.vars.push(Var {
                            name: name.name.clone(),
                            role,
                            timed: *timed,
                            ty: VarType::Real { size: 1 },
                            estimator: None,
                        });
                        self.spans.vars.push(name.span);
                    }
                }
                Item::Param { name, span, .. } => {
                    let id = self.model.params.len();
                    if self.declare(name, Sym::Param(id)) {
                        self.model.params.push(Param {
                            name: name.name.clone(),
                            shape: Shape::scalar(),
                            init: ParamInit::Fill(0.0),
                        });
                        self.spans.params.push(*span);
                    }
                }
                Item::Net { name, span, .. } => {
                    let id = self.model.nets.len();
                    if self.declare(name, Sym::Net(id)) {
                        self.model.nets.push(Net {
                            name: name.name.clone(),
                            kind: NetKind::Mlp {
                                sizes: vec![1, 1],
                                activation: Activation::Relu,
                            },
                        });
                        self.spans.nets.push(*span);
                    }
                }
                Item::Optimality {
                    name, timed, span, ..
                } => {
                    let id = self.model.optimality.len();
                    if self.declare(name, Sym::Opt(id)) {
                        self.model.optimality.push(Optimality {
                            name: name.name.clone(),
                            timed: *timed,
                            reward: Expr::num(0.0),
                            parents: vec![],
                            alpha: Alpha::Fixed(1.0),
                        });
                        self.spans.optimality.push(*span);
                    }
                }
                _ => {}
            }
        }
    }

    /// Dims and consts, in source order.
    pub fn constants(&mut self, items: &[Item]) {
        for item in items {
            match item {
                Item::Dims(bs) => {
                    for b in bs {
                        let Some((Sym::Dim(id), _)) = self.names.get(&b.name.name).copied() else {
                            continue;
                        };
                        if self
                            .model
                            .dims
                            .get(id)
                            .map(|d| d.name != b.name.name)
                            .unwrap_or(true)
                        {
                            continue;
                        }
                        if let Some(v) = self.size_eval(&b.value) {
                            self.model.dims[id].value = v;
                            self.scalar_values.insert(b.name.name.clone(), v as f64);
                        } else {
                            self.poisoned.insert(Sym::Dim(id));
                        }
                    }
                }
                Item::Consts(bs) => {
                    for b in bs {
                        let Some((Sym::Const(id), _)) = self.names.get(&b.name.name).copied()
                        else {
                            continue;
                        };
                        let Some(v) = self.const_eval(&b.value) else {
                            self.poisoned.insert(Sym::Const(id));
                            continue;
                        };
                        if v.values.iter().any(|x| !x.is_finite()) {
                            self.poisoned.insert(Sym::Const(id));
                            self.err(Diagnostic::new(Code::BadValue, format!("const `{}` is not finite", b.name.name))
                                .label(b.value.span, "evaluates to NaN or infinity")
                                .help("check for a division by zero or the log of a non-positive number"));
                            continue;
                        }
                        if let Some(x) = v.as_scalar().filter(|_| v.shape.0.is_empty()) {
                            self.scalar_values.insert(b.name.name.clone(), x);
                        }
                        let c = &mut self.model.consts[id];
                        c.shape = v.shape;
                        c.values = v.values;
                        self.evaluated.insert(Sym::Const(id));
                    }
                }
                _ => {}
            }
        }
    }

    fn var_type(&mut self, ty: &TypeAst, is_param: bool) -> Option<(VarType, Shape)> {
        let dims: Vec<usize> = ty
            .dims
            .iter()
            .map(|d| self.size_eval(d))
            .collect::<Option<_>>()?;
        let kw = ty.name.name.as_str();
        let bad = |ck: &mut Ck, msg: String, help: &str| {
            ck.err(
                Diagnostic::new(Code::NotAVector, msg)
                    .label(ty.span, "this type")
                    .help(help.to_string()),
            );
            None
        };
        match (kw, dims.as_slice(), is_param) {
            ("real", [], true) => Some((VarType::Real { size: 1 }, Shape::scalar())),
            ("real", [n], true) => Some((VarType::Real { size: *n }, Shape::vector(*n))),
            ("real", [r, c], true) => Some((VarType::Real { size: r * c }, Shape::matrix(*r, *c))),
            (_, _, true) => bad(
                self,
                format!(
                    "a param has type `real`, `real[n]` or `real[r, c]`, not `{kw}` with {} dims",
                    dims.len()
                ),
                "params are real scalars, vectors or matrices",
            ),
            ("onehot", [k], false) => Some((
                VarType::OneHot {
                    groups: 1,
                    classes: *k,
                },
                Shape::vector(*k),
            )),
            ("onehot", [g, k], false) => Some((
                VarType::OneHot {
                    groups: *g,
                    classes: *k,
                },
                Shape::vector(g * k),
            )),
            ("onehot", _, false) => bad(
                self,
                "`onehot` takes `[classes]` or `[groups, classes]`".into(),
                "e.g. `onehot[10]` or Dreamer's `onehot[32, 32]`",
            ),
            (k, [] | [_], false) => {
                let size = dims.first().copied().unwrap_or(1);
                let t = match k {
                    "real" => VarType::Real { size },
                    "unit" => VarType::Unit { size },
                    _ => VarType::Binary { size },
                };
                Some((t, Shape::vector(size)))
            }
            (_, _, false) => bad(
                self,
                format!("variables are vectors, but `{kw}` has {} dims", dims.len()),
                "flatten it: `real[R * C]`",
            ),
        }
    }

    /// Check the `param`, `net` and variable declarations and add them to the IR (sizes, kinds,
    /// initial values, estimator settings); consts and dims are already evaluated.
    pub fn declarations(&mut self, items: &[Item]) {
        for item in items {
            match item {
                Item::Var {
                    name,
                    ty,
                    estimator,
                    ..
                } => {
                    let Some((Sym::Var(id), _)) = self.names.get(&name.name).copied() else {
                        continue;
                    };
                    if self.model.vars[id].name != name.name {
                        continue;
                    }
                    match self.var_type(ty, false) {
                        Some((t, _)) => self.model.vars[id].ty = t,
                        None => {
                            self.poisoned.insert(Sym::Var(id));
                        }
                    }
                    if let Some(est) = estimator {
                        match Estimator::parse(&est.name) {
                            Some(e) => self.model.vars[id].estimator = Some(e),
                            None => self.err(Diagnostic::new(Code::UnknownEstimator, format!("unknown estimator `{}`", est.name))
                                .label(est.span, "not an estimator")
                                .help("estimators: reparam, straight_through, enumerate, score_function (or leave it out for the automatic choice)")),
                        }
                    }
                }
                Item::Param { name, ty, init, .. } => {
                    let Some((Sym::Param(id), _)) = self.names.get(&name.name).copied() else {
                        continue;
                    };
                    let Some((_, shape)) = self.var_type(ty, true) else {
                        self.poisoned.insert(Sym::Param(id));
                        continue;
                    };
                    self.model.params[id].shape = shape.clone();
                    if let Some(init) = init {
                        if let Some(i) = self.param_init(init, &shape) {
                            self.model.params[id].init = i;
                        }
                    }
                }
                Item::Net { name, spec, .. } => {
                    let Some((Sym::Net(id), _)) = self.names.get(&name.name).copied() else {
                        continue;
                    };
                    match self.net_kind(spec) {
                        Some(kind) => self.model.nets[id].kind = kind,
                        None => {
                            self.poisoned.insert(Sym::Net(id));
                        }
                    }
                }
                Item::Data { path, span } => {
                    if self.model.data.is_some() {
                        self.err(
                            Diagnostic::new(
                                Code::MultipleModelParts,
                                "the default data file is given twice",
                            )
                            .label(*span, "second `data`")
                            .help("keep one `data \"…\"` line"),
                        );
                    }
                    self.model.data = Some(path.clone());
                }
                _ => {}
            }
        }
    }

    /// A param's initial value, which must be representable in f32 (parameters are f32): a
    /// larger one became infinite, and `uniform` bounds whose width overflows f64 panicked in
    /// the sampler.
    fn param_init(&mut self, init: &ast::Expr, shape: &Shape) -> Option<ParamInit> {
        let v = self.param_init_value(init, shape)?;
        let max = f64::from(f32::MAX);
        let fits = match &v {
            ParamInit::Fill(x) => x.abs() <= max,
            ParamInit::Values(xs) => xs.iter().all(|x| x.abs() <= max),
            // Draws stay within 40 standard deviations of the mean.
            ParamInit::Normal { mean, std } => mean.abs() + 40.0 * std <= max,
            ParamInit::Uniform { low, high } => low.abs() <= max && high.abs() <= max,
        };
        if !fits {
            self.err(
                Diagnostic::new(
                    Code::BadValue,
                    format!(
                        "initial value out of the f32 range (±{:e}): parameters are f32",
                        f32::MAX
                    ),
                )
                .label(init.span, "too large for f32")
                .help("initialise parameters with values of a sensible scale, e.g. `= 0`, `normal(0, 0.1)` or `uniform(-1, 1)`"),
            );
            return None;
        }
        Some(v)
    }

    fn param_init_value(&mut self, init: &ast::Expr, shape: &Shape) -> Option<ParamInit> {
        if let ExprKind::Call { fun, args } = &init.kind {
            if fun.name == "normal" || fun.name == "uniform" {
                let pos: Vec<&ast::Expr> = args
                    .iter()
                    .filter_map(|a| if let Arg::Pos(e) = a { Some(e) } else { None })
                    .collect();
                if pos.len() != 2 || pos.len() != args.len() {
                    self.err(
                        Diagnostic::new(
                            Code::BadArguments,
                            format!("`{}` takes 2 arguments", fun.name),
                        )
                        .label(init.span, "wrong arguments")
                        .help(format!("`{}(a, b)`", fun.name)),
                    );
                    return None;
                }
                let (a, b) = (self.scalar_eval(pos[0])?, self.scalar_eval(pos[1])?);
                let ok = if fun.name == "normal" {
                    b >= 0.0
                } else {
                    a < b
                };
                if !ok {
                    self.err(
                        Diagnostic::new(
                            Code::BadValue,
                            format!("invalid `{}` initialiser", fun.name),
                        )
                        .label(
                            init.span,
                            if fun.name == "normal" {
                                "standard deviation is negative"
                            } else {
                                "low ≥ high"
                            },
                        )
                        .help(
                            "normal(mean, std) needs std ≥ 0; uniform(low, high) needs low < high",
                        ),
                    );
                    return None;
                }
                return Some(if fun.name == "normal" {
                    ParamInit::Normal { mean: a, std: b }
                } else {
                    ParamInit::Uniform { low: a, high: b }
                });
            }
        }
        let v: CVal = self.const_eval(init)?;
        if let Some(x) = v.as_scalar().filter(|_| v.shape.0.len() <= 1) {
            return Some(ParamInit::Fill(x));
        }
        if v.shape != *shape
            && !(v.values.len() == shape.numel() && !shape.is_matrix() && !v.shape.is_matrix())
        {
            self.err(Diagnostic::new(Code::ParamInitShape, format!("initial value has shape {}, the param has shape {shape}", v.shape))
                .label(init.span, format!("shape {}", v.shape))
                .help("give a number (fills every element), an array of the param's shape, `eye(n)`, `normal(m, s)` or `uniform(a, b)`"));
            return None;
        }
        Some(ParamInit::Values(v.values))
    }

    fn net_kind(&mut self, spec: &ast::NetSpecAst) -> Option<NetKind> {
        let sizes: Vec<usize> = spec
            .sizes
            .iter()
            .map(|s| self.size_eval(s))
            .collect::<Option<_>>()?;
        let kind = spec.kind.name.as_str();
        let mut activation = Activation::Relu;
        let mut reverse = false;
        for o in &spec.opts {
            let name = o.name.name.as_str();
            let ok = match (kind, name, &o.value) {
                ("mlp", _, None) => Activation::parse(name).map(|a| activation = a).is_some(),
                ("mlp", "activation", Some(v)) => match &v.kind {
                    ExprKind::Name(id) => Activation::parse(&id.name)
                        .map(|a| activation = a)
                        .is_some(),
                    _ => false,
                },
                ("rnn", "reverse", None) => {
                    reverse = true;
                    true
                }
                _ => false,
            };
            if !ok {
                self.err(
                    Diagnostic::new(
                        Code::UnknownNetKind,
                        format!("`{name}` is not an option of `{kind}`"),
                    )
                    .label(o.name.span, "unknown option")
                    .help(match kind {
                        "mlp" | "linear" => {
                            "mlp options: an activation (relu, tanh, elu, silu, none)"
                        }
                        "rnn" => {
                            "rnn options: `reverse` (a reverse-time net for smoothing posteriors)"
                        }
                        _ => "gru takes no options",
                    }),
                );
            }
        }
        let want = |ck: &mut Ck, n: &str| {
            ck.err(
                Diagnostic::new(
                    Code::BadArguments,
                    format!("`{kind}` takes {n}, given {} sizes", sizes.len()),
                )
                .label(spec.span, "wrong number of sizes")
                .help(format!("write `{kind}(IN -> …)` with {n}")),
            );
            None
        };
        match kind {
            "mlp" if sizes.len() >= 2 => Some(NetKind::Mlp { sizes, activation }),
            "mlp" => want(self, "at least 2 sizes (`IN -> OUT`)"),
            "linear" if sizes.len() == 2 => Some(NetKind::Mlp {
                sizes,
                activation: Activation::Identity,
            }),
            "linear" => want(self, "exactly 2 sizes (`IN -> OUT`)"),
            "gru" if sizes.len() == 2 => Some(NetKind::Gru {
                input: sizes[0],
                hidden: sizes[1],
            }),
            "gru" => want(self, "exactly 2 sizes (`IN -> HIDDEN`)"),
            "rnn" if sizes.len() == 2 => Some(NetKind::Rnn {
                input: sizes[0],
                hidden: sizes[1],
                reverse,
            }),
            "rnn" => want(self, "exactly 2 sizes (`IN -> HIDDEN`)"),
            _ => {
                self.err(
                    Diagnostic::new(Code::UnknownNetKind, format!("unknown net kind `{kind}`"))
                        .label(spec.kind.span, "not a net kind")
                        .help("net kinds: mlp, linear, gru, rnn"),
                );
                None
            }
        }
    }

    /// Check the `init x[k] = …` statements: the name is a timed variable, the step `k` is ≤ 0
    /// and given once, and the value reads no variable and has the variable's size.
    pub fn inits(&mut self, items: &[Item]) {
        for item in items {
            let Item::Init {
                name,
                index,
                value,
                span,
            } = item
            else {
                continue;
            };
            let Some(sym) = self.resolve(name) else {
                continue;
            };
            let Sym::Var(v) = sym else {
                self.err(
                    Diagnostic::new(
                        Code::WrongKind,
                        format!(
                            "`init` applies to variables; `{}` is {}",
                            name.name,
                            sym.describe()
                        ),
                    )
                    .label(name.span, "not a variable")
                    .help(
                        "give a param its initial value in its declaration: `param w : real = 0.5`",
                    ),
                );
                continue;
            };
            let var = self.var(v).clone();
            if !var.timed || *index > 0 {
                self.err(Diagnostic::new(Code::BadInit, if var.timed { format!("`init {}[{index}]` is inside the sequence", var.name) } else { format!("`{}` is static; `init` gives values before a sequence starts", var.name) })
                    .label(*span, "invalid init")
                    .help(if var.timed { format!("steps start at 1; `init {}[0]` is the value a lag reads before step 1. For step 1 write a base case in p or q", var.name) } else { "remove the init, or declare the variable time-indexed".to_string() }));
                continue;
            }
            if self
                .model
                .inits
                .iter()
                .any(|i| i.var == v && i.step == *index)
            {
                self.err(
                    Diagnostic::new(
                        Code::Duplicate,
                        format!("`init {}[{index}]` is given twice", var.name),
                    )
                    .label(*span, "second init")
                    .help("keep one"),
                );
                continue;
            }
            let cx = Cx {
                block: None,
                time: Time::Static,
                seq: None,
                no_vars: true,
            };
            let Some(e) = self.expr(value, cx) else {
                continue;
            };
            if e.shape.numel() != var.ty.size()
                && !e.shape.is_unit()
                && !self.poisoned.contains(&Sym::Var(v))
            {
                self.err(Diagnostic::new(Code::InitSize, format!("`{}` has size {}, its init value has size {}", var.name, var.ty.size(), e.shape.numel()))
                    .label(value.span, format!("size {}", e.shape.numel()))
                    .help("give a scalar (broadcast to every element) or a vector of the variable's size"));
                continue;
            }
            self.model.inits.push(InitValue {
                var: v,
                step: *index,
                value: e,
            });
            self.spans.inits.push(*span);
        }
    }

    /// Check the `optimality O[t] : reward = …` declarations: settings (`alpha`, `auto`,
    /// `target`), and a reward that is a scalar.
    pub fn optimality(&mut self, items: &[Item]) {
        for item in items {
            let Item::Optimality {
                name,
                args,
                span,
                timed,
            } = item
            else {
                continue;
            };
            let Some((Sym::Opt(id), _)) = self.names.get(&name.name).copied() else {
                continue;
            };
            let mut reward = None;
            let mut alpha = Alpha::Fixed(1.0);
            for kw in args {
                match kw.name.name.as_str() {
                    "reward" => {
                        let time = if *timed { Time::General(1) } else { Time::Static };
                        reward = self.expr(&kw.value, Cx { block: None, time, seq: None, no_vars: false });
                        if reward.is_none() {
                            reward = Some(Expr::num(0.0)); // already reported
                        }
                    }
                    "alpha" => {
                        let auto = match &kw.value.kind {
                            ExprKind::Call { fun, args } if fun.name == "auto" => Some(args),
                            _ => None,
                        };
                        if let Some(args) = auto {
                            let mut target = None;
                            let mut init = 1.0;
                            for a in args {
                                match a {
                                    Arg::Kw(k) if k.name.name == "target" => target = self.scalar_eval(&k.value),
                                    Arg::Kw(k) if k.name.name == "init" => init = self.scalar_eval(&k.value).unwrap_or(1.0),
                                    _ => self.err(Diagnostic::new(Code::BadOptimality, "`auto` takes `target = …` and optionally `init = …`")
                                        .label(a.span(), "unexpected argument")
                                        .help("e.g. `alpha = auto(target = -1.0)` tunes α to a target entropy (SAC)")),
                                }
                            }
                            match target {
                                Some(t) if init > 0.0 => alpha = Alpha::Auto { target: t, init },
                                _ => self.err(Diagnostic::new(Code::BadOptimality, "`auto` needs `target = <entropy>` and a positive init")
                                    .label(kw.value.span, "incomplete")
                                    .help("e.g. `alpha = auto(target = -1.0)`")),
                            }
                        } else if let Some(a) = self.scalar_eval(&kw.value) {
                            if a > 0.0 {
                                alpha = Alpha::Fixed(a);
                            } else {
                                self.err(Diagnostic::new(Code::BadOptimality, format!("the temperature α must be positive, given {a}"))
                                    .label(kw.value.span, "α ≤ 0")
                                    .help("log p(O = 1 | r) = r / α needs α > 0"));
                            }
                        }
                    }
                    other => self.err(Diagnostic::new(Code::BadOptimality, format!("`optimality` has no setting `{other}`"))
                        .label(kw.name.span, "unknown")
                        .help("write `optimality O[t] : reward = <expr>, alpha = <number | auto(target = …)>`")),
                }
            }
            let Some(reward) = reward else {
                self.err(Diagnostic::new(Code::BadOptimality, format!("optimality `{}` has no reward", name.name))
                    .label(*span, "missing `reward = …`")
                    .help("log p(O = 1 | r) = r / α: give the reward, e.g. `reward = -dot(x[t], x[t])`"));
                continue;
            };
            if reward.shape.numel() != 1 {
                self.err(Diagnostic::new(Code::RewardNotScalar, format!("the reward of `{}` has size {}, not a scalar", name.name, reward.shape))
                    .label(args.iter().find(|k| k.name.name == "reward").map(|k| k.value.span).unwrap_or(*span), format!("size {}", reward.shape))
                    .help("sum it (`sum(…)`) or take a `dot`; log p(O = 1 | r) needs one number per step"));
            }
            let o = &mut self.model.optimality[id];
            o.parents = reward.reads();
            o.reward = reward;
            o.alpha = alpha;
        }
    }
}
