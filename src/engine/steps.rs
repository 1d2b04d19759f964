//! The parts of a plan the runtime evaluates on their own: whether a mapping applies to a record
//! (its `when`, to choose among the mappings of one event), and the follow-up request of
//! `target.then` with its find.

use std::sync::Arc;

use serde_json::Value;

use super::{RecordError, Request, request_query, request_text};
use crate::expr::{Resolver, Scope, Var};
use crate::plan::Plan;

impl Plan {
    /// Whether the mapping's `when` holds for `source` (a mapping without one always applies).
    pub fn applies(
        &self,
        source: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<bool, RecordError> {
        let Some(w) = &self.when else {
            return Ok(true);
        };
        let ctx = self.ctx(resolver);
        let source = Arc::new(source.clone());
        let vars = [("source", Var::root(&source))];
        let scope = Scope::new(&vars, &ctx.rt);
        let holds = w.eval_bool(&scope).map_err(|e| ctx.error(&"when", e.0))?;
        let unlooked = ctx.rt.unlooked();
        if !unlooked.is_empty() {
            return Err(RecordError::Unbound(unlooked));
        }
        Ok(holds)
    }

    /// A template of the mapping outside the body (`reconcile.total`) over the named records;
    /// `None` when it renders none or undefined.
    pub fn evaluate(
        &self,
        template: &crate::expr::Template,
        records: &[(&str, &Arc<Value>)],
        field: &str,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Option<Value>, RecordError> {
        let ctx = self.ctx(resolver);
        let vars: Vec<_> = records.iter().map(|(n, v)| (*n, Var::root(v))).collect();
        let scope = Scope::new(&vars, &ctx.rt);
        match ctx.eval(template, &scope, &field)? {
            crate::expr::Out::Value(v) => Ok(Some(v)),
            crate::expr::Out::Absent => Ok(None),
        }
    }

    /// The request of `target.then` on the record the create made (`created`, its answer);
    /// `None` when the mapping has no `then`.
    pub fn then_request(
        &self,
        source: &Value,
        body: &Value,
        created: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Option<Request>, RecordError> {
        let Some(then) = &self.target.then else {
            return Ok(None);
        };
        let ctx = self.ctx(resolver);
        let roots = [source, body, created].map(|v| Arc::new(v.clone()));
        let vars = [
            ("source", Var::root(&roots[0])),
            ("body", Var::root(&roots[1])),
            ("created", Var::root(&roots[2])),
        ];
        let scope = Scope::new(&vars, &ctx.rt);
        Ok(Some(Request {
            method: then.method.as_str(),
            path: request_text(&ctx, &then.path, &scope, "target.then.path")?,
            query: request_query(&ctx, &then.query, &scope, "target.then.query")?,
            body: None,
            sends_body: false,
        }))
    }

    /// The GET of `target.then.find`; `None` when there is none.
    pub fn then_find_request(
        &self,
        source: &Value,
        body: &Value,
        created: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Option<Request>, RecordError> {
        let Some(find) = self.target.then.as_ref().and_then(|t| t.find.as_ref()) else {
            return Ok(None);
        };
        let ctx = self.ctx(resolver);
        let roots = [source, body, created].map(|v| Arc::new(v.clone()));
        let vars = [
            ("source", Var::root(&roots[0])),
            ("body", Var::root(&roots[1])),
            ("created", Var::root(&roots[2])),
        ];
        let scope = Scope::new(&vars, &ctx.rt);
        let query = request_query(&ctx, &find.query, &scope, "target.then.find.query")?;
        Ok(Some(Request {
            method: "GET",
            path: request_text(&ctx, &find.path, &scope, "target.then.find.path")?,
            query,
            body: None,
            sends_body: false,
        }))
    }

    /// The first of `items` that `target.then.find.match` says the step made (the first item
    /// when there is no `match`).
    pub fn then_match<'a>(
        &self,
        items: &'a [Value],
        source: &Value,
        body: &Value,
        created: &Value,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Option<&'a Value>, RecordError> {
        let Some(find) = self.target.then.as_ref().and_then(|t| t.find.as_ref()) else {
            return Ok(None);
        };
        let Some(m) = &find.matches else {
            return Ok(items.first());
        };
        let ctx = self.ctx(resolver);
        let roots = [source, body, created].map(|v| Arc::new(v.clone()));
        for item in items {
            let item_root = Arc::new(item.clone());
            let vars = [
                ("item", Var::root(&item_root)),
                ("source", Var::root(&roots[0])),
                ("body", Var::root(&roots[1])),
                ("created", Var::root(&roots[2])),
            ];
            let scope = Scope::new(&vars, &ctx.rt);
            if m.eval_bool(&scope)
                .map_err(|e| ctx.error(&"target.then.find.match", e.0))?
            {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }
}
