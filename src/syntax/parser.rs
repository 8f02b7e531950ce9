//! Builds the typed AST from pest pairs.

use super::ast::*;
use super::syntax_error::from_pest;
use crate::diag::{Diagnostic, FileId, Span};
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/tv.pest"]
struct TvParser;

/// Parses one file. A syntax error stops the parse: it is reported alone.
pub fn parse(file: FileId, text: &str) -> Result<Program, Diagnostic> {
    let mut pairs = TvParser::parse(Rule::program, text).map_err(|e| from_pest(file, text, e))?;
    let program = pairs.next().map(|p| p.into_inner()).into_iter().flatten();
    let builder = Builder { file };
    let stmts = program
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(|p| builder.stmt(p))
        .collect();
    Ok(Program { stmts })
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
            .op(Op::prefix(Rule::neg))
    })
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
            | Rule::kw_to
    )
}

struct Builder {
    file: FileId,
}

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
        let expr_span = self.span(&pair);
        pratt()
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, operand| {
                let span = self.span(&op).to(operand.span);
                Spanned::new(ExprKind::Neg(Box::new(operand)), span)
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let span = lhs.span.to(rhs.span);
                Spanned::new(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span)
            })
            .parse(pair.into_inner())
            .with_span_at_least(expr_span)
    }

    fn primary(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::number => ExprKind::Num(pair.as_str().parse().unwrap_or(f64::NAN)),
            Rule::string => ExprKind::Str(self.string_parts(pair)),
            Rule::ident => ExprKind::Var(pair.as_str().to_string()),
            Rule::list => ExprKind::List(pair.into_inner().map(|e| self.expr(e)).collect()),
            Rule::call => return self.call(span, pair),
            Rule::expr => return self.expr(pair),
            other => unreachable!("not an operand: {other:?}"),
        };
        Spanned::new(kind, span)
    }

    fn call(&self, span: Span, pair: Pair<Rule>) -> Expr {
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("call has a name"));
        let args = inner
            .next()
            .map(|args| args.into_inner().map(|a| self.arg(a)).collect())
            .unwrap_or_default();
        Spanned::new(ExprKind::Call(name, args), span)
    }

    fn arg(&self, pair: Pair<Rule>) -> Arg {
        let mut inner: Vec<_> = pair.into_inner().collect();
        let value = self.expr(inner.pop().expect("argument has a value"));
        let name = inner.pop().map(|n| self.ident(n));
        Arg { name, value }
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

trait SpanAtLeast {
    fn with_span_at_least(self, span: Span) -> Self;
}

impl SpanAtLeast for Expr {
    /// A parenthesised expression keeps the span of its parentheses.
    fn with_span_at_least(mut self, span: Span) -> Self {
        self.span = self.span.to(span);
        self
    }
}
