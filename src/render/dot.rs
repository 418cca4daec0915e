//! `vic graph`: the graphical model as Graphviz DOT. p's edges are solid, q's dashed;
//! deterministic states are boxes, observed nodes shaded, inputs plain text, optimality
//! nodes double circles; an edge from an earlier step is labelled with its lag.

use crate::ir::*;
use std::collections::BTreeSet;
use std::fmt::Write;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn graph(m: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&m.name));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [fontname=\"Helvetica\"];");
    for v in &m.vars {
        let label = if v.timed {
            format!("{}[t]", v.name)
        } else {
            v.name.clone()
        };
        let attrs = match v.role {
            Role::Observed => "shape=ellipse, style=filled, fillcolor=gray80",
            Role::Latent => "shape=ellipse",
            Role::State => "shape=box",
            Role::Input => "shape=plaintext",
        };
        let _ = writeln!(
            out,
            "  {} [label={}, {attrs}];",
            quote(&v.name),
            quote(&label)
        );
    }
    for o in &m.optimality {
        let label = if o.timed {
            format!("{}[t]", o.name)
        } else {
            o.name.clone()
        };
        let _ = writeln!(
            out,
            "  {} [label={}, shape=doublecircle, style=filled, fillcolor=gray80];",
            quote(&o.name),
            quote(&label)
        );
    }
    let mut edges = BTreeSet::new();
    for f in &m.factors {
        for r in &f.parents {
            let lag = match (r.time, f.case) {
                (TimeRef::Lag(0), _) | (TimeRef::Static, _) => String::new(),
                (TimeRef::Lag(k), _) => format!("t-{k}"),
                (TimeRef::Step(s), TimeCase::At(k)) if s == i64::from(k) => String::new(),
                (TimeRef::Step(s), _) => format!("[{s}]"),
                (TimeRef::Suffix, _) => "t:T".into(),
                (TimeRef::Prefix, _) => "1:t".into(),
            };
            edges.insert((
                m.vars[r.var].name.clone(),
                m.vars[f.var].name.clone(),
                f.block,
                lag,
            ));
        }
    }
    for o in &m.optimality {
        for r in &o.parents {
            let lag = match r.time {
                TimeRef::Lag(k) if k > 0 => format!("t-{k}"),
                _ => String::new(),
            };
            edges.insert((m.vars[r.var].name.clone(), o.name.clone(), Block::P, lag));
        }
    }
    for (from, to, block, lag) in edges {
        let mut attrs = Vec::new();
        if block == Block::Q {
            attrs.push("style=dashed".to_string());
        }
        if !lag.is_empty() {
            attrs.push(format!("label={}", quote(&lag)));
        }
        let a = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(out, "  {} -> {}{a};", quote(&from), quote(&to));
    }
    let _ = writeln!(out, "}}");
    out
}
