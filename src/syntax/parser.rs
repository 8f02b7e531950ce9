//! Builds the typed AST from pest pairs.

use super::ast::*;
use super::limits::{check_nesting, too_deep, MAX_DEPTH};
use super::syntax_error::from_pest;
use crate::diag::{Diagnostic, FileId, Span};
use pest::iterators::Pair;
use pest::Parser;
use std::cell::Cell;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/tv.pest"]
struct TvParser;

/// Parses one file. A syntax error stops the parse: it is reported alone.
pub fn parse(file: FileId, text: &str) -> Result<Program, Diagnostic> {
    check_nesting(file, text)?;
    // Track literal tokens too, so errors can say "expected `=`".
    pest::set_error_detail(true);
    let mut pairs = TvParser::parse(Rule::program, text).map_err(|e| from_pest(file, text, e))?;
    let program = pairs.next().map(|p| p.into_inner()).into_iter().flatten();
    let builder = Builder {
        file,
        too_deep: Cell::new(None),
        overflow: Cell::new(None),
    };
    let stmts = program
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(|p| builder.stmt(p))
        .collect();
    if let Some(span) = builder.overflow.get() {
        let literal = &text[span.start..span.end];
        let message = format!("the number {literal} is too large: the largest is about 1.8e308");
        return Err(Diagnostic::new("tv::number", message).at(span, "beyond f64"));
    }
    match builder.too_deep.get() {
        Some(span) => Err(too_deep(span, "more than 200 levels of operators, calls or lists")),
        None => Ok(Program { stmts }),
    }
}

/// Parses the figure of `tv plot`, `KIND(ARGS)`, as one source file.
pub fn parse_plot_spec(file: FileId, text: &str) -> Result<(Ident, Vec<Arg>), Diagnostic> {
    check_nesting(file, text)?;
    pest::set_error_detail(true);
    let mut pairs = TvParser::parse(Rule::plot_spec, text).map_err(|e| from_pest(file, text, e))?;
    let call = pairs
        .next()
        .and_then(|p| p.into_inner().next())
        .expect("a plot spec holds a call");
    let builder = Builder {
        file,
        too_deep: Cell::new(None),
        overflow: Cell::new(None),
    };
    Ok(builder.plot_call(call))
}

/// Binding strength of an infix operator; all associate to the left.
fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Add | BinOp::Sub => 1,
        BinOp::Mul | BinOp::Div => 2,
    }
}

/// Keyword tokens carry no information once the rule is known.
fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_use
            | Rule::kw_let
            | Rule::kw_fn
            | Rule::kw_set
            | Rule::kw_sweep
            | Rule::kw_in
            | Rule::kw_step
            | Rule::kw_eval
            | Rule::kw_save
            | Rule::kw_plot
            | Rule::kw_to
    )
}

struct Builder {
    file: FileId,
    /// Set when an expression passes `MAX_DEPTH`; the parse then fails.
    too_deep: Cell<Option<Span>>,
    /// The first number literal beyond f64's range; the parse then fails.
    overflow: Cell<Option<Span>>,
}

/// An expression with the depth of its tree.
type Built = (Expr, usize);

impl Builder {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    /// The children of a pair without its keyword tokens.
    fn parts<'a>(&self, pair: Pair<'a, Rule>) -> Vec<Pair<'a, Rule>> {
        pair.into_inner().filter(|p| !is_keyword(p.as_rule())).collect()
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Spanned::new(pair.as_str().to_string(), self.span(&pair))
    }

    fn stmt(&self, pair: Pair<Rule>) -> Stmt {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut parts = self.parts(pair).into_iter();
        let mut next = || parts.next().expect("grammar guarantees the parts of a statement");
        let kind = match rule {
            Rule::use_stmt => {
                let string = next();
                let s = self.span(&string);
                StmtKind::Use(Spanned::new(self.literal_string(string), s))
            }
            Rule::let_stmt => StmtKind::Let(self.ident(next()), self.expr(next())),
            Rule::set_stmt => StmtKind::Set(self.ident(next()), self.expr(next())),
            Rule::eval_stmt => StmtKind::Eval(self.ident(next()), self.expr(next())),
            Rule::save_stmt => StmtKind::Save(self.expr(next()), self.expr(next())),
            Rule::plot_stmt => {
                let (kind, args) = self.plot_call(next());
                StmtKind::Plot(PlotStmt {
                    kind,
                    args,
                    target: self.expr(next()),
                })
            }
            Rule::fn_stmt => return self.fn_stmt(span, parts.collect()),
            Rule::sweep_stmt => return self.sweep(span, parts.collect()),
            other => unreachable!("not a statement: {other:?}"),
        };
        Spanned::new(kind, span)
    }

    fn fn_stmt(&self, span: Span, parts: Vec<Pair<Rule>>) -> Stmt {
        let mut parts = parts.into_iter();
        let name = self.ident(parts.next().expect("fn has a name"));
        let mut params = Vec::new();
        let mut body = None;
        for part in parts {
            match part.as_rule() {
                Rule::params => params = part.into_inner().map(|p| self.param(p)).collect(),
                _ => body = Some(self.expr(part)),
            }
        }
        let body = body.expect("fn has a body");
        Spanned::new(StmtKind::Fn(FnDef { name, params, body }), span)
    }

    fn param(&self, pair: Pair<Rule>) -> Param {
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("param has a name"));
        let default = inner.next().map(|e| self.expr(e));
        Param { name, default }
    }

    fn sweep(&self, span: Span, parts: Vec<Pair<Rule>>) -> Stmt {
        let mut bindings = Vec::new();
        let mut body = Vec::new();
        for part in parts {
            match part.as_rule() {
                Rule::binding => bindings.push(self.binding(part)),
                _ => body = part.into_inner().map(|s| self.stmt(s)).collect(),
            }
        }
        Spanned::new(StmtKind::Sweep(bindings, body), span)
    }

    fn binding(&self, pair: Pair<Rule>) -> Binding {
        let mut parts = self.parts(pair).into_iter();
        let var = self.ident(parts.next().expect("binding has a variable"));
        let domain = parts.next().expect("binding has a domain");
        let domain = match domain.as_rule() {
            Rule::range => self.range(domain),
            _ => Domain::List(self.expr(domain)),
        };
        Binding { var, domain }
    }

    fn range(&self, pair: Pair<Rule>) -> Domain {
        let mut parts = self.parts(pair).into_iter();
        let start = self.expr(parts.next().expect("range has a start"));
        let inclusive = parts.next().map(|p| p.as_rule()) == Some(Rule::range_incl);
        let end = self.expr(parts.next().expect("range has an end"));
        let step = parts.next().map(|p| self.expr(p));
        Domain::Range {
            start,
            end,
            inclusive,
            step,
        }
    }

    fn expr(&self, pair: Pair<Rule>) -> Expr {
        self.expr_depth(pair).0
    }

    /// Operator-precedence parsing of the flat `prefix* primary (infix
    /// prefix* primary)*` sequence, without recursion, so long chains
    /// cannot exhaust the stack.
    fn expr_depth(&self, pair: Pair<Rule>) -> Built {
        let mut operands: Vec<Built> = Vec::new();
        let mut operators: Vec<BinOp> = Vec::new();
        let mut negations: Vec<Span> = Vec::new();
        for part in pair.into_inner() {
            let op = match part.as_rule() {
                Rule::neg => {
                    negations.push(self.span(&part));
                    continue;
                }
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                _ => {
                    let mut operand = self.primary(part);
                    for minus in negations.drain(..).rev() {
                        let span = minus.to(operand.0.span);
                        operand = self.node(ExprKind::Neg(Box::new(operand.0)), span, operand.1 + 1);
                    }
                    operands.push(operand);
                    continue;
                }
            };
            while operators.last().is_some_and(|top| precedence(*top) >= precedence(op)) {
                self.reduce(&mut operands, &mut operators);
            }
            operators.push(op);
        }
        while !operators.is_empty() {
            self.reduce(&mut operands, &mut operators);
        }
        operands.pop().expect("grammar guarantees an operand")
    }

    /// Replaces the top two operands by the top operator applied to them.
    fn reduce(&self, operands: &mut Vec<Built>, operators: &mut Vec<BinOp>) {
        let op = operators.pop().expect("an operator to reduce");
        let (rhs, rd) = operands.pop().expect("right operand");
        let (lhs, ld) = operands.pop().expect("left operand");
        let span = lhs.span.to(rhs.span);
        let built = self.node(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span, ld.max(rd) + 1);
        operands.push(built);
    }

    /// A new node of depth `depth`; past the limit, the error is recorded
    /// and a leaf stands in, so the tree never grows deeper.
    fn node(&self, kind: ExprKind, span: Span, depth: usize) -> Built {
        if depth > MAX_DEPTH {
            if self.too_deep.get().is_none() {
                self.too_deep.set(Some(span));
            }
            return (Spanned::new(ExprKind::Num(0.0), span), 0);
        }
        (Spanned::new(kind, span), depth)
    }

    fn primary(&self, pair: Pair<Rule>) -> Built {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => ExprKind::Num(self.number(&pair, span)),
            Rule::string => ExprKind::Str(self.string_parts(pair)),
            Rule::ident => ExprKind::Var(pair.as_str().to_string()),
            Rule::list => {
                let items: Vec<Built> = pair.into_inner().map(|e| self.expr_depth(e)).collect();
                let depth = items.iter().map(|(_, d)| *d).max().unwrap_or(0) + 1;
                let items = items.into_iter().map(|(e, _)| e).collect();
                return self.node(ExprKind::List(items), span, depth);
            }
            Rule::call => return self.call(span, pair),
            // Parentheses are silent in the grammar: what they hold stands alone.
            Rule::expr => return self.expr_depth(pair),
            other => unreachable!("not an operand: {other:?}"),
        };
        (Spanned::new(kind, span), 1)
    }

    /// A number literal; one that overflows f64 is recorded as an error
    /// (Rust would read it as inf).
    fn number(&self, pair: &Pair<Rule>, span: Span) -> f64 {
        let value: f64 = pair.as_str().parse().unwrap_or(f64::NAN);
        if !value.is_finite() && self.overflow.get().is_none() {
            self.overflow.set(Some(span));
        }
        value
    }

    /// A plot's kind and arguments.
    fn plot_call(&self, pair: Pair<Rule>) -> (Ident, Vec<Arg>) {
        let span = self.span(&pair);
        match self.call(span, pair).0.node {
            ExprKind::Call(kind, args) => (kind, args),
            _ => unreachable!("a call builds a call"),
        }
    }

    fn call(&self, span: Span, pair: Pair<Rule>) -> Built {
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("call has a name"));
        let mut depth = 1;
        let args = inner
            .next()
            .map(|args| {
                let args = args.into_inner().map(|a| self.arg(a));
                args.map(|(arg, d)| {
                    depth = depth.max(d + 1);
                    arg
                })
                .collect()
            })
            .unwrap_or_default();
        self.node(ExprKind::Call(name, args), span, depth)
    }

    fn arg(&self, pair: Pair<Rule>) -> (Arg, usize) {
        let mut inner: Vec<_> = pair.into_inner().collect();
        let (value, depth) = self.expr_depth(inner.pop().expect("argument has a value"));
        let name = inner.pop().map(|n| self.ident(n));
        (Arg { name, value }, depth)
    }

    fn string_parts(&self, pair: Pair<Rule>) -> Vec<StrPart> {
        let mut parts: Vec<StrPart> = Vec::new();
        for piece in pair.into_inner() {
            let literal = match piece.as_rule() {
                Rule::text => piece.as_str().to_string(),
                Rule::escape => unescape(piece.as_str()).to_string(),
                Rule::brace_open => "{".to_string(),
                Rule::brace_close => "}".to_string(),
                _ => {
                    let name = piece.into_inner().next().expect("interpolation names a value");
                    parts.push(StrPart::Interp(self.ident(name)));
                    continue;
                }
            };
            match parts.last_mut() {
                Some(StrPart::Lit(s)) => s.push_str(&literal),
                _ => parts.push(StrPart::Lit(literal)),
            }
        }
        parts
    }

    /// A string that must not interpolate (the path of `use`).
    fn literal_string(&self, pair: Pair<Rule>) -> String {
        self.string_parts(pair)
            .into_iter()
            .map(|p| match p {
                StrPart::Lit(s) => s,
                StrPart::Interp(name) => format!("{{{}}}", name.node),
            })
            .collect()
    }
}

fn unescape(escape: &str) -> &'static str {
    match escape {
        "\\n" => "\n",
        "\\\"" => "\"",
        _ => "\\",
    }
}
