//! Pest pairs → AST. The grammar guarantees the pair structure, so the `expect`s here are
//! internal invariants, not reachable by any input; user faults return a `Diagnostic`.

use super::ast::*;
use super::Rule;
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use pest::iterators::Pair;

type R<T> = Result<T, Diagnostic>;

fn span(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

fn ident(p: Pair<Rule>) -> Ident {
    debug_assert_eq!(p.as_rule(), Rule::ident);
    Ident {
        name: p.as_str().to_string(),
        span: span(&p),
    }
}

fn int(p: &Pair<Rule>) -> R<i64> {
    p.as_str().parse::<i64>().map_err(|_| {
        Diagnostic::new(Code::BadNumber, "integer out of range")
            .label(span(p), "too large")
            .help("indices and sizes must fit in 64 bits")
    })
}

pub fn model(file: Pair<Rule>) -> R<ModelAst> {
    let m = file
        .into_inner()
        .find(|p| p.as_rule() == Rule::model)
        .expect("file contains model");
    let sp = span(&m);
    let mut inner = m.into_inner();
    let name = ident(inner.next().expect("model name"));
    let items = inner.map(item).collect::<R<Vec<_>>>()?;
    Ok(ModelAst {
        name,
        items,
        span: sp,
    })
}

fn item(p: Pair<Rule>) -> R<Item> {
    let sp = span(&p);
    let rule = p.as_rule();
    let mut inner = p.into_inner();
    Ok(match rule {
        Rule::dim_decl => Item::Dims(inner.map(binding).collect::<R<_>>()?),
        Rule::const_decl => Item::Consts(inner.map(binding).collect::<R<_>>()?),
        Rule::param_decl => {
            let name = ident(inner.next().expect("param name"));
            let ty = ty(inner.next().expect("param type"))?;
            let init = inner.next().map(expr).transpose()?;
            Item::Param {
                name,
                ty,
                init,
                span: sp,
            }
        }
        Rule::var_decl => {
            let role = match inner.next().expect("role").as_str() {
                "observed" => RoleAst::Observed,
                "latent" => RoleAst::Latent,
                "input" => RoleAst::Input,
                _ => RoleAst::State,
            };
            let name = ident(inner.next().expect("var name"));
            let mut timed = false;
            let mut next = inner.next().expect("type");
            if next.as_rule() == Rule::time_decl {
                timed = true;
                next = inner.next().expect("type");
            }
            let ty = ty(next)?;
            let estimator = inner
                .next()
                .map(|e| ident(e.into_inner().next().expect("estimator name")));
            Item::Var {
                role,
                name,
                timed,
                ty,
                estimator,
                span: sp,
            }
        }
        Rule::net_decl => {
            let name = ident(inner.next().expect("net name"));
            let spec = net_spec(inner.next().expect("net spec"))?;
            Item::Net {
                name,
                spec,
                span: sp,
            }
        }
        Rule::init_decl => {
            let name = ident(inner.next().expect("init name"));
            let index = int(&inner.next().expect("init index"))?;
            let value = expr(inner.next().expect("init value"))?;
            Item::Init {
                name,
                index,
                value,
                span: sp,
            }
        }
        Rule::optimality_decl => {
            let name = ident(inner.next().expect("optimality name"));
            let mut timed = false;
            let mut args = Vec::new();
            for q in inner {
                match q.as_rule() {
                    Rule::time_decl => timed = true,
                    _ => args.push(kwarg(q)?),
                }
            }
            Item::Optimality {
                name,
                timed,
                args,
                span: sp,
            }
        }
        Rule::data_decl => {
            let s = inner.next().expect("data path");
            let raw = s.as_str();
            Item::Data {
                path: raw[1..raw.len() - 1].to_string(),
                span: span(&s),
            }
        }
        Rule::block => {
            let kind = match inner.next().expect("block kind").as_str() {
                "p" => BlockKind::P,
                _ => BlockKind::Q,
            };
            let stmts = inner.map(stmt).collect::<R<_>>()?;
            Item::Block {
                kind,
                stmts,
                span: sp,
            }
        }
        Rule::objective => Item::Objective {
            settings: inner.map(setting).collect::<R<_>>()?,
            span: sp,
        },
        Rule::imagine => {
            let mut factors = Vec::new();
            let mut settings = Vec::new();
            for q in inner {
                if q.as_rule() == Rule::imagine_factor {
                    let mut parts = q.into_inner();
                    let role = parts.next().expect("factor role");
                    factors.push(ImagineFactor {
                        role: if role.as_str() == "policy" {
                            ImagineRole::Policy
                        } else {
                            ImagineRole::Prior
                        },
                        role_span: span(&role),
                        stmt: stmt(parts.next().expect("imagine statement"))?,
                    });
                } else {
                    settings.push(setting(q)?);
                }
            }
            Item::Imagine {
                factors,
                settings,
                span: sp,
            }
        }
        r => unreachable!("item rule {r:?}"),
    })
}

fn binding(p: Pair<Rule>) -> R<Binding> {
    let mut inner = p.into_inner();
    Ok(Binding {
        name: ident(inner.next().expect("binding name")),
        value: expr(inner.next().expect("binding value"))?,
    })
}

fn kwarg(p: Pair<Rule>) -> R<Kwarg> {
    let mut inner = p.into_inner();
    Ok(Kwarg {
        name: ident(inner.next().expect("kwarg name")),
        value: expr(inner.next().expect("kwarg value"))?,
    })
}

fn ty(p: Pair<Rule>) -> R<TypeAst> {
    let sp = span(&p);
    let mut inner = p.into_inner();
    let n = inner.next().expect("type name");
    let name = Ident {
        name: n.as_str().to_string(),
        span: span(&n),
    };
    let dims = inner.map(expr).collect::<R<_>>()?;
    Ok(TypeAst {
        name,
        dims,
        span: sp,
    })
}

fn net_spec(p: Pair<Rule>) -> R<NetSpecAst> {
    let sp = span(&p);
    let mut inner = p.into_inner();
    let kind = ident(inner.next().expect("net kind"));
    let mut sizes = Vec::new();
    let mut opts = Vec::new();
    for q in inner {
        match q.as_rule() {
            Rule::expr => sizes.push(expr(q)?),
            _ => {
                let mut o = q.into_inner();
                opts.push(NetOpt {
                    name: ident(o.next().expect("net option")),
                    value: o.next().map(expr).transpose()?,
                });
            }
        }
    }
    Ok(NetSpecAst {
        kind,
        sizes,
        opts,
        span: sp,
    })
}

fn target(p: Pair<Rule>) -> R<Target> {
    let sp = span(&p);
    let mut inner = p.into_inner();
    let name = ident(inner.next().expect("target name"));
    let index = match inner.next() {
        None => TargetIndex::None,
        Some(ix) => {
            let i = ix.into_inner().next().expect("target index");
            match i.as_rule() {
                Rule::time_var => TargetIndex::T,
                _ => TargetIndex::At(int(&i)?),
            }
        }
    };
    Ok(Target {
        name,
        index,
        span: sp,
    })
}

fn stmt(p: Pair<Rule>) -> R<StmtAst> {
    let sp = span(&p);
    let rule = p.as_rule();
    let mut inner = p.into_inner();
    let target = target(inner.next().expect("stmt target"))?;
    let rhs = inner.next().expect("stmt rhs");
    Ok(match rule {
        Rule::sample_stmt => StmtAst::Sample {
            target,
            dist: dist(rhs)?,
            span: sp,
        },
        _ => StmtAst::Assign {
            target,
            value: expr(rhs)?,
            span: sp,
        },
    })
}

fn dist(p: Pair<Rule>) -> R<DistAst> {
    let sp = span(&p);
    let mut inner = p.into_inner().peekable();
    let family = ident(inner.next().expect("family"));
    let form = match inner.peek() {
        Some(q) if q.as_rule() == Rule::ident => Some(ident(inner.next().expect("form"))),
        _ => None,
    };
    let args = inner.map(arg).collect::<R<_>>()?;
    Ok(DistAst {
        family,
        form,
        args,
        span: sp,
    })
}

fn arg(p: Pair<Rule>) -> R<Arg> {
    Ok(match p.as_rule() {
        Rule::kwarg => Arg::Kw(kwarg(p)?),
        _ => Arg::Pos(expr(p)?),
    })
}

fn setting(p: Pair<Rule>) -> R<SettingAst> {
    let sp = span(&p);
    let mut inner = p.into_inner().peekable();
    let key = ident(inner.next().expect("setting key"));
    let subject = match inner.peek() {
        Some(q) if q.as_rule() == Rule::ident => Some(ident(inner.next().expect("subject"))),
        _ => None,
    };
    let value = expr(inner.next().expect("setting value"))?;
    let opts = inner.map(kwarg).collect::<R<_>>()?;
    Ok(SettingAst {
        key,
        subject,
        value,
        opts,
        span: sp,
    })
}

/// Expressions deeper than this (operator chains included) are an error (`E002`): every
/// later stage recurses over expressions, and this bound keeps them all within the stack.
pub const MAX_EXPR_DEPTH: usize = 256;

fn too_deep(sp: Span) -> Diagnostic {
    Diagnostic::new(
        Code::TooDeep,
        format!("expression nested more than {MAX_EXPR_DEPTH} operations deep"),
    )
    .label(sp, "too deep")
    .help("split it with a `state` node or a `const`; long sums can use `sum(…)` over a vector")
}

pub fn expr(p: Pair<Rule>) -> R<Expr> {
    expr_d(p).map(|(e, _)| e)
}

fn expr_d(p: Pair<Rule>) -> R<(Expr, usize)> {
    let sp = span(&p);
    let (e, d) = expr_inner(p)?;
    if d > MAX_EXPR_DEPTH {
        return Err(too_deep(sp));
    }
    Ok((e, d))
}

fn args_d(pairs: pest::iterators::Pairs<Rule>) -> R<(Vec<Arg>, usize)> {
    let mut out = Vec::new();
    let mut depth = 0;
    for q in pairs {
        let (a, d) = match q.as_rule() {
            Rule::kwarg => {
                let mut inner = q.into_inner();
                let name = ident(inner.next().expect("kwarg name"));
                let (value, d) = expr_d(inner.next().expect("kwarg value"))?;
                (Arg::Kw(Kwarg { name, value }), d)
            }
            _ => {
                let (e, d) = expr_d(q)?;
                (Arg::Pos(e), d)
            }
        };
        depth = depth.max(d);
        out.push(a);
    }
    Ok((out, depth))
}

fn expr_inner(p: Pair<Rule>) -> R<(Expr, usize)> {
    let sp = span(&p);
    match p.as_rule() {
        Rule::expr | Rule::term => {
            let mut inner = p.into_inner();
            let (mut acc, mut depth) = expr_d(inner.next().expect("operand"))?;
            while let Some(op) = inner.next() {
                let (rhs, rd) = expr_d(inner.next().expect("rhs operand"))?;
                depth = depth.max(rd) + 1;
                if depth > MAX_EXPR_DEPTH {
                    return Err(too_deep(acc.span.to(rhs.span)));
                }
                let op = match op.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    "/" => BinOp::Div,
                    _ => BinOp::MatMul,
                };
                let span = acc.span.to(rhs.span);
                acc = Expr {
                    kind: ExprKind::Bin {
                        op,
                        lhs: Box::new(acc),
                        rhs: Box::new(rhs),
                    },
                    span,
                };
            }
            Ok((acc, depth))
        }
        Rule::unary => {
            let mut negs = 0;
            let mut operand = None;
            for q in p.into_inner() {
                if q.as_rule() == Rule::neg {
                    negs += 1;
                    if negs > MAX_EXPR_DEPTH {
                        return Err(too_deep(sp));
                    }
                } else {
                    operand = Some(expr_d(q)?);
                }
            }
            let (mut e, d) = operand.expect("unary operand");
            let depth = d + negs;
            for _ in 0..negs {
                e = Expr {
                    kind: ExprKind::Neg(Box::new(e)),
                    span: sp,
                };
            }
            Ok((e, depth))
        }
        Rule::postfix => {
            let mut inner = p.into_inner();
            let (mut e, mut depth) = expr_d(inner.next().expect("primary"))?;
            for s in inner {
                depth += 1;
                if depth > MAX_EXPR_DEPTH {
                    return Err(too_deep(sp));
                }
                let k = s.into_inner().next().expect("select index");
                let kspan = span(&k);
                let k = int(&k)?;
                e = Expr {
                    span: e.span.to(kspan),
                    kind: ExprKind::Select(Box::new(e), k as usize),
                };
            }
            Ok((e, depth))
        }
        Rule::paren => expr_d(p.into_inner().next().expect("paren inner")),
        Rule::array => {
            let mut items = Vec::new();
            let mut depth = 0;
            for q in p.into_inner() {
                let (e, d) = expr_d(q)?;
                depth = depth.max(d);
                items.push(e);
            }
            Ok((
                Expr {
                    kind: ExprKind::Array(items),
                    span: sp,
                },
                depth + 1,
            ))
        }
        Rule::call => {
            let mut inner = p.into_inner();
            let fun = ident(inner.next().expect("callee"));
            let (args, d) = args_d(inner)?;
            Ok((
                Expr {
                    kind: ExprKind::Call { fun, args },
                    span: sp,
                },
                d + 1,
            ))
        }
        Rule::indexed => {
            let mut inner = p.into_inner();
            let name = ident(inner.next().expect("indexed name"));
            let ix = inner
                .next()
                .expect("index")
                .into_inner()
                .next()
                .expect("index kind");
            let index = match ix.as_rule() {
                Rule::suffix_index => IndexAst::Suffix,
                Rule::prefix_index => IndexAst::Prefix,
                Rule::shifted => {
                    let mut s = ix.into_inner();
                    s.next(); // `t`
                    match s.next() {
                        None => IndexAst::Shift(0),
                        Some(op) => {
                            let k = int(&s.next().expect("shift amount"))?;
                            IndexAst::Shift(if op.as_str() == "-" { -k } else { k })
                        }
                    }
                }
                _ => IndexAst::At(int(&ix)?),
            };
            Ok((
                Expr {
                    kind: ExprKind::Index { name, index },
                    span: sp,
                },
                1,
            ))
        }
        Rule::number => {
            let v: f64 = p.as_str().parse().unwrap_or(f64::INFINITY);
            if !v.is_finite() {
                return Err(Diagnostic::new(Code::BadNumber, "number out of range")
                    .label(sp, "not a finite 64-bit float")
                    .help("write a number below 1.8e308"));
            }
            Ok((
                Expr {
                    kind: ExprKind::Num(v),
                    span: sp,
                },
                1,
            ))
        }
        Rule::ident => Ok((
            Expr {
                kind: ExprKind::Name(ident(p)),
                span: sp,
            },
            1,
        )),
        r => unreachable!("expression rule {r:?}"),
    }
}
