//! `vic graph`: the graphical model as Graphviz DOT. p's edges are solid, q's dashed;
//! deterministic states are boxes, observed nodes shaded, inputs plain text, optimality
//! nodes double circles; each node names its distribution (`s[t] ~ Normal`, then q's). Every
//! node sits in the batch plate (one sequence of N), the time-indexed ones in a time plate
//! inside it. The edges between two nodes in one model (p or q) are one edge labelled with all
//! their lags (`t-1, t-2`); self-loops of p and q leave opposite sides of the node (the time
//! plate has a wide margin to hold them). A legend explains the conventions used.

use crate::ir::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// The families of `v`'s factors in `block`, in order, without repeats.
fn families(m: &Model, v: VarId, block: Block) -> Vec<&'static str> {
    let mut out = Vec::new();
    for f in m.factors.iter().filter(|f| f.var == v && f.block == block) {
        if let FactorBody::Sample(d) = &f.body {
            if !out.contains(&d.family.name()) {
                out.push(d.family.name());
            }
        }
    }
    out
}

/// A node's label: `name[t] ~ Family` for p, a second line for q's family where q has one.
fn node_label(m: &Model, v: VarId) -> String {
    let var = &m.vars[v];
    let name = if var.timed {
        format!("{}[t]", var.name)
    } else {
        var.name.clone()
    };
    match var.role {
        Role::State => format!("{name} = f(·)"),
        Role::Input => format!("{name} (input)"),
        Role::Observed | Role::Latent => {
            let p = families(m, v, Block::P);
            let q = families(m, v, Block::Q);
            let mut label = if p.is_empty() {
                name
            } else {
                format!("{name} ~ {}", p.join(" / "))
            };
            if !q.is_empty() {
                let _ = write!(label, "\nq: {}", q.join(" / "));
            }
            label
        }
    }
}

fn node_attrs(role: Role) -> &'static str {
    match role {
        Role::Observed => "shape=ellipse, style=filled, fillcolor=gray85",
        Role::Latent => "shape=ellipse",
        Role::State => "shape=box",
        Role::Input => "shape=plaintext",
    }
}

/// The lag label of a read by a factor covering `case` (empty: the same step, or static).
fn lag(time: TimeRef, case: TimeCase) -> Option<String> {
    match (time, case) {
        (TimeRef::Lag(0), _) | (TimeRef::Static, _) => None,
        (TimeRef::Lag(k), _) => Some(format!("t-{k}")),
        (TimeRef::Step(s), TimeCase::At(k)) if s == i64::from(k) => None,
        (TimeRef::Step(s), _) => Some(format!("[{s}]")),
        (TimeRef::Lead(k), _) => Some(format!("t+{k}")),
        (TimeRef::Suffix, _) => Some("t:T".into()),
        (TimeRef::Prefix, _) => Some("1:t".into()),
    }
}

/// The model's graph in Graphviz DOT: nodes (with their distributions) in batch and time
/// plates, p's edges solid and q's dashed, lags as edge labels, and a legend.
pub fn graph(m: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&m.name));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  newrank=true;");
    let _ = writeln!(out, "  node [fontname=\"Helvetica\"];");
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    // The nodes, in their plates.
    let plate = "style=rounded; color=gray50; fontname=\"Helvetica\"; fontsize=11";
    let _ = writeln!(out, "  subgraph cluster_batch {{");
    let batch = if m.is_sequential() {
        "sequence"
    } else {
        "example"
    };
    let _ = writeln!(out, "    label=\"{batch} n = 1..N\"; labeljust=l; {plate};");
    let node = |out: &mut String, indent: &str, v: VarId| {
        let _ = writeln!(
            out,
            "{indent}{} [label={}, {}];",
            quote(&m.vars[v].name),
            quote(&node_label(m, v)),
            node_attrs(m.vars[v].role)
        );
    };
    let optimality = |out: &mut String, indent: &str, o: &Optimality| {
        let label = if o.timed {
            format!("{}[t]", o.name)
        } else {
            o.name.clone()
        };
        let _ = writeln!(
            out,
            "{indent}{} [label={}, shape=doublecircle, style=filled, fillcolor=gray85];",
            quote(&o.name),
            quote(&label)
        );
    };
    for v in (0..m.vars.len()).filter(|v| !m.vars[*v].timed) {
        node(&mut out, "    ", v);
    }
    for o in m.optimality.iter().filter(|o| !o.timed) {
        optimality(&mut out, "    ", o);
    }
    if m.vars.iter().any(|x| x.timed) || m.optimality.iter().any(|o| o.timed) {
        let _ = writeln!(out, "    subgraph cluster_time {{");
        let _ = writeln!(
            out,
            "      label=\"t = 1..T\"; labeljust=l; margin=24; {plate};"
        );
        for v in (0..m.vars.len()).filter(|v| m.vars[*v].timed) {
            node(&mut out, "      ", v);
        }
        for o in m.optimality.iter().filter(|o| o.timed) {
            optimality(&mut out, "      ", o);
        }
        if let Some(b) = &m.behaviour {
            // Imagination: the critic and the imagined optimality variable, dotted.
            let _ = writeln!(
                out,
                "      \"imagine critic\" [label={}, shape=box, style=\"rounded,dotted\"];",
                quote(&format!("V = {}", m.show_expr(&b.critic)))
            );
            let _ = writeln!(
                out,
                "      \"imagine reward\" [label={}, shape=doublecircle, style=dotted];",
                quote(&format!("O[τ]: r = {}", m.show_expr(&b.reward)))
            );
        }
        let _ = writeln!(out, "    }}");
    }
    let _ = writeln!(out, "  }}");
    // The edges: one per (parent, child, model), labelled with every lag it carries.
    let mut edges: BTreeMap<(String, String, Block), BTreeSet<String>> = BTreeMap::new();
    let mut edge = |from: &str, to: &str, block: Block, lag: Option<String>| {
        let lags = edges
            .entry((from.to_string(), to.to_string(), block))
            .or_default();
        lags.insert(lag.unwrap_or_default());
    };
    for f in &m.factors {
        for r in &f.parents {
            edge(
                &m.vars[r.var].name,
                &m.vars[f.var].name,
                f.block,
                lag(r.time, f.case),
            );
        }
    }
    for o in &m.optimality {
        for r in &o.parents {
            let l = match r.time {
                TimeRef::Lag(k) if k > 0 => Some(format!("t-{k}")),
                _ => None,
            };
            edge(&m.vars[r.var].name, &o.name, Block::P, l);
        }
    }
    for ((from, to, block), lags) in &edges {
        let mut attrs = Vec::new();
        if *block == Block::Q {
            attrs.push("style=dashed".to_string());
        }
        let lags: Vec<&str> = lags
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| l.as_str())
            .collect();
        // A same-step read beside lagged ones is drawn as its own plain edge.
        let same_step = edges[&(from.clone(), to.clone(), *block)].contains("");
        if from == to {
            // p's loop above the node, q's below: their labels never stack.
            let side = if *block == Block::P { "n" } else { "s" };
            attrs.push(format!("tailport={side}, headport={side}"));
        }
        if !lags.is_empty() {
            attrs.push(format!("label={}", quote(&lags.join(", "))));
            let _ = writeln!(out, "  {} -> {}{};", quote(from), quote(to), list(&attrs));
            if same_step && from != to {
                let plain: Vec<String> = attrs
                    .iter()
                    .filter(|a| !a.starts_with("label="))
                    .cloned()
                    .collect();
                let _ = writeln!(out, "  {} -> {}{};", quote(from), quote(to), list(&plain));
            }
        } else {
            let _ = writeln!(out, "  {} -> {}{};", quote(from), quote(to), list(&attrs));
        }
    }
    if let Some(b) = &m.behaviour {
        // Imagination's edges: the policy and the prior into the action, the reads of the
        // imagined reward and of the critic; dotted, one per (parent, child).
        let action = quote(&m.vars[b.action].name);
        let mut seen: BTreeSet<(String, String, &str)> = BTreeSet::new();
        let groups: [(&[Read], &str, &str); 4] = [
            (&b.policy_parents, action.as_str(), "policy"),
            (&b.prior_parents, action.as_str(), "prior"),
            (&b.reward_parents, "\"imagine reward\"", ""),
            (&b.critic_parents, "\"imagine critic\"", ""),
        ];
        for (reads, to, label) in groups {
            for r in reads {
                let from = quote(&m.vars[r.var].name);
                if seen.insert((from.clone(), to.to_string(), label)) {
                    let l = if label.is_empty() {
                        String::new()
                    } else {
                        format!(", label={}", quote(label))
                    };
                    let _ = writeln!(out, "  {from} -> {to} [style=dotted, color=blue{l}];");
                }
            }
        }
    }
    let lagged = edges.values().flatten().any(|l| !l.is_empty());
    legend(&mut out, m, lagged);
    let _ = writeln!(out, "}}");
    out
}

fn list(attrs: &[String]) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        format!(" [{}]", attrs.join(", "))
    }
}

/// A legend cluster: p's and q's edges, what a lag label means (when an edge has one), and
/// the node kinds the model has.
fn legend(out: &mut String, m: &Model, lagged: bool) {
    let _ = writeln!(out, "  subgraph cluster_legend {{");
    let _ = writeln!(
        out,
        "    label=\"legend\"; labeljust=l; style=dashed; color=gray70; fontname=\"Helvetica\"; fontsize=10;"
    );
    let _ = writeln!(
        out,
        "    node [fontname=\"Helvetica\", fontsize=9, height=0.25, margin=0.04];"
    );
    let _ = writeln!(
        out,
        "    \"legend p0\" [shape=point, width=0.05]; \"legend p1\" [label=\"p: the model\", shape=plaintext];"
    );
    let _ = writeln!(
        out,
        "    \"legend q0\" [shape=point, width=0.05]; \"legend q1\" [label=\"q: the posterior\", shape=plaintext];"
    );
    let _ = writeln!(out, "    \"legend p0\" -> \"legend p1\";");
    let _ = writeln!(out, "    \"legend q0\" -> \"legend q1\" [style=dashed];");
    if m.behaviour.is_some() {
        let _ = writeln!(
            out,
            "    \"legend i0\" [shape=point, width=0.05]; \"legend i1\" [label=\"imagination: policy, prior, reward, critic\", shape=plaintext];"
        );
        let _ = writeln!(
            out,
            "    \"legend i0\" -> \"legend i1\" [style=dotted, color=blue];"
        );
    }
    if lagged {
        let _ = writeln!(
            out,
            "    \"legend l0\" [shape=point, width=0.05]; \"legend l1\" [label=\"from k steps earlier\", shape=plaintext];"
        );
        let _ = writeln!(out, "    \"legend l0\" -> \"legend l1\" [label=\"t-k\"];");
    }
    let kinds = [
        (Role::Observed, "observed"),
        (Role::Latent, "latent"),
        (Role::State, "deterministic"),
        (Role::Input, "input"),
    ];
    // The node kinds in one row (chained by invisible edges), under the edge samples.
    let mut shown = Vec::new();
    for (role, name) in kinds {
        if m.vars.iter().any(|v| v.role == role) {
            let label = if role == Role::Input {
                "input (given)"
            } else {
                name
            };
            let _ = writeln!(
                out,
                "    \"legend {name}\" [label=\"{label}\", {}];",
                node_attrs(role)
            );
            shown.push(format!("\"legend {name}\""));
        }
    }
    if !m.optimality.is_empty() {
        let _ = writeln!(
            out,
            "    \"legend optimality\" [label=\"optimality\", shape=doublecircle, style=filled, fillcolor=gray85];"
        );
        shown.push("\"legend optimality\"".into());
    }
    if shown.len() > 1 {
        let _ = writeln!(out, "    {} [style=invis];", shown.join(" -> "));
    }
    let _ = writeln!(out, "  }}");
}
