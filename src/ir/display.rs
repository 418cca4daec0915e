//! A readable, stable text form of the IR (used by snapshots and by the renderers to print
//! expressions the way the user wrote them, with names resolved).

use super::*;
use std::fmt::Write;

fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Model {
    /// A time reference as written after a name: `""`, `[t]`, `[t-2]`, `[3]`, `[t:]`, `[:t]`.
    pub fn show_time(&self, t: TimeRef) -> String {
        match t {
            TimeRef::Static => String::new(),
            TimeRef::Lag(0) => "[t]".into(),
            TimeRef::Lag(k) => format!("[t-{k}]"),
            TimeRef::Step(k) => format!("[{k}]"),
            TimeRef::Lead(k) => format!("[t+{k}]"),
            TimeRef::Suffix => "[t:]".into(),
            TimeRef::Prefix => "[:t]".into(),
        }
    }

    /// A read as written: `z[t-1]`.
    pub fn show_read(&self, r: Read) -> String {
        format!("{}{}", self.vars[r.var].name, self.show_time(r.time))
    }

    /// The variable a factor defines, as written on its left-hand side.
    pub fn show_target(&self, f: &Factor) -> String {
        let name = &self.vars[f.var].name;
        match f.case {
            TimeCase::Static => name.clone(),
            TimeCase::At(k) => format!("{name}[{k}]"),
            TimeCase::From(_) => format!("{name}[t]"),
        }
    }

    /// An expression in source syntax, with only the parentheses precedence needs.
    pub fn show_expr(&self, e: &Expr) -> String {
        let mut s = String::new();
        self.write_expr(&mut s, e, 0);
        s
    }

    fn write_expr(&self, s: &mut String, e: &Expr, prec: u8) {
        let list = |this: &Self, s: &mut String, xs: &[Expr]| {
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                this.write_expr(s, x, 0);
            }
        };
        match &e.kind {
            ExprKind::Num(v) => s.push_str(&num(*v)),
            ExprKind::Const(c) => s.push_str(&self.consts[*c].name),
            ExprKind::Param(p) => s.push_str(&self.params[*p].name),
            ExprKind::Var { var, time } => s.push_str(&self.show_read(Read {
                var: *var,
                time: *time,
            })),
            ExprKind::Unary { op: UnOp::Neg, arg } => {
                s.push('-');
                self.write_expr(s, arg, 3);
            }
            ExprKind::Unary { op, arg } => {
                let _ = write!(s, "{}(", op.name());
                self.write_expr(s, arg, 0);
                s.push(')');
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let p = match op {
                    BinOp::Add | BinOp::Sub => 1,
                    _ => 2,
                };
                if p < prec {
                    s.push('(');
                }
                self.write_expr(s, lhs, p);
                let _ = write!(s, " {} ", op.symbol());
                self.write_expr(s, rhs, p + 1);
                if p < prec {
                    s.push(')');
                }
            }
            ExprKind::Dot(a, b) => {
                s.push_str("dot(");
                list(self, s, &[(**a).clone(), (**b).clone()]);
                s.push(')');
            }
            ExprKind::Sum(a) => {
                s.push_str("sum(");
                self.write_expr(s, a, 0);
                s.push(')');
            }
            ExprKind::Concat(xs) => {
                s.push_str("concat(");
                list(self, s, xs);
                s.push(')');
            }
            ExprKind::Select { arg, index } => {
                self.write_expr(s, arg, 4);
                let _ = write!(s, ".{index}");
            }
            ExprKind::Clamp { arg, low, high } => {
                s.push_str("clamp(");
                list(
                    self,
                    s,
                    &[(**arg).clone(), (**low).clone(), (**high).clone()],
                );
                s.push(')');
            }
            ExprKind::Fill(v) => {
                let f = if *v == 0.0 { "zeros" } else { "ones" };
                let _ = write!(
                    s,
                    "{f}({})",
                    e.shape
                        .0
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            ExprKind::Eye => {
                let _ = write!(s, "eye({})", e.shape.0.first().copied().unwrap_or(0));
            }
            ExprKind::Array(vs) => {
                let _ = write!(
                    s,
                    "[{}]",
                    vs.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", ")
                );
            }
            ExprKind::Net { net, args } | ExprKind::Rnn { net, seqs: args } => {
                let _ = write!(s, "{}(", self.nets[*net].name);
                list(self, s, args);
                s.push(')');
            }
            ExprKind::Gru { net, hidden, args } => {
                let _ = write!(s, "{}(", self.nets[*net].name);
                self.write_expr(s, hidden, 0);
                for a in args {
                    s.push_str(", ");
                    self.write_expr(s, a, 0);
                }
                s.push(')');
            }
        }
    }

    /// A distribution as written: `Normal(loc, scale)`, `Normal.split(head)`, …
    pub fn show_dist(&self, d: &Dist) -> String {
        let fam = d.family.name();
        match &d.args {
            DistArgs::LocScale { loc, scale } => {
                format!("{fam}({}, {})", self.show_expr(loc), self.show_expr(scale))
            }
            DistArgs::Split { head, scale_fn } => {
                let opts = match scale_fn {
                    ScaleFn::Softplus { min } if *min == 0.0 => String::new(),
                    ScaleFn::Softplus { min } => format!(", min = {}", num(*min)),
                    ScaleFn::Exp { min } if *min == 0.0 => ", scale = exp".into(),
                    ScaleFn::Exp { min } => format!(", scale = exp, min = {}", num(*min)),
                };
                format!("{fam}.split({}{opts})", self.show_expr(head))
            }
            DistArgs::Logits(l) => format!("{fam}({})", self.show_expr(l)),
            DistArgs::Bounds { low, high } => {
                format!("{fam}({}, {})", self.show_expr(low), self.show_expr(high))
            }
            DistArgs::Params(ps) => format!(
                "{fam}({})",
                ps.iter()
                    .map(|e| self.show_expr(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DistArgs::None => fam.to_string(),
        }
    }

    fn show_case(case: TimeCase) -> String {
        match case {
            TimeCase::Static => "static".into(),
            TimeCase::At(k) => format!("t = {k}"),
            TimeCase::From(k) => format!("t ≥ {k}"),
        }
    }

    /// The whole IR as readable text: the form the IR snapshots use.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "model {}", self.name);
        for d in &self.dims {
            let _ = writeln!(s, "  dim {} = {}", d.name, d.value);
        }
        for c in &self.consts {
            let _ = writeln!(
                s,
                "  const {} : {} = [{}]",
                c.name,
                c.shape,
                c.values
                    .iter()
                    .map(|v| num(*v))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for p in &self.params {
            let _ = writeln!(s, "  param {} : {} = {:?}", p.name, p.shape, p.init);
        }
        for n in &self.nets {
            let kind = match &n.kind {
                NetKind::Mlp { sizes, activation } => format!(
                    "mlp({}, {})",
                    sizes
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(" -> "),
                    activation.keyword()
                ),
                NetKind::Gru { input, hidden } => format!("gru({input} -> {hidden})"),
                NetKind::Rnn {
                    input,
                    hidden,
                    reverse,
                } => format!(
                    "rnn({input} -> {hidden}{})",
                    if *reverse { ", reverse" } else { "" }
                ),
            };
            let _ = writeln!(s, "  net {} = {kind}", n.name);
        }
        for v in &self.vars {
            let ty = match v.ty {
                VarType::OneHot { groups, classes } => format!("onehot[{groups}, {classes}]"),
                t => format!("{}[{}]", t.keyword(), t.size()),
            };
            let _ = writeln!(
                s,
                "  {} {}{} : {ty}{}",
                v.role.keyword(),
                v.name,
                if v.timed { "[t]" } else { "" },
                v.estimator
                    .map(|e| format!(" via {}", e.keyword()))
                    .unwrap_or_default()
            );
        }
        for i in &self.inits {
            let _ = writeln!(
                s,
                "  init {}[{}] = {}",
                self.vars[i.var].name,
                i.step,
                self.show_expr(&i.value)
            );
        }
        for block in [Block::P, Block::Q] {
            let _ = writeln!(s, "  {} {{", block.letter());
            for f in self.factors.iter().filter(|f| f.block == block) {
                let rhs = match &f.body {
                    FactorBody::Sample(d) => format!("~ {}", self.show_dist(d)),
                    FactorBody::Define(e) => format!("= {}", self.show_expr(e)),
                };
                let parents = f
                    .parents
                    .iter()
                    .map(|r| self.show_read(*r))
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(
                    s,
                    "    {} {rhs}    ({}; reads {})",
                    self.show_target(f),
                    Self::show_case(f.case),
                    if parents.is_empty() {
                        "nothing".into()
                    } else {
                        parents
                    }
                );
            }
            let _ = writeln!(s, "  }}");
        }
        for o in &self.optimality {
            let _ = writeln!(
                s,
                "  optimality {}{} : reward = {}, alpha = {:?}",
                o.name,
                if o.timed { "[t]" } else { "" },
                self.show_expr(&o.reward),
                o.alpha
            );
        }
        let _ = writeln!(s, "  objective {:?}", self.objective);
        if let Some(d) = &self.data {
            let _ = writeln!(s, "  data {d:?}");
        }
        if let Some(b) = &self.behaviour {
            let a = &self.vars[b.action].name;
            let _ = writeln!(s, "  imagine {{");
            let _ = writeln!(s, "    policy {a}[t] ~ {}", self.show_dist(&b.policy));
            let _ = writeln!(s, "    prior {a}[t] ~ {}", self.show_dist(&b.prior));
            let _ = writeln!(
                s,
                "    reward = {}, alpha = {}",
                self.show_expr(&b.reward),
                num(b.alpha)
            );
            let _ = writeln!(
                s,
                "    critic = {} (net {})",
                self.show_expr(&b.critic),
                self.nets[b.critic_net].name
            );
            let _ = writeln!(
                s,
                "    horizon = {}, discount = {}, lambda = {}, start = {:?}",
                b.horizon, b.discount, b.lambda, b.start
            );
            if let Some(c) = &b.cont {
                let _ = writeln!(
                    s,
                    "    continue = {}: P = {}",
                    self.vars[c.var].name,
                    self.show_expr(&c.prob)
                );
            }
            if b.straight_through {
                let _ = writeln!(s, "    estimator = straight_through");
            }
            let _ = writeln!(s, "  }}");
        }
        s
    }
}
