//! The staged diagnosis no command owns. [`pipeline`] is the stage table and its runner,
//! [`stages`] one module per stage. `check` runs every stage; `wait` and `scan` run the
//! [`CONNECTION`] rows through [`connect`] and get the same diagnosis, in the same codes, of why
//! they have no usable client.

pub mod pipeline;
pub mod stages;

use pipeline::{run_stages, Outcome, StageId};

use crate::consul::SharedClient;
use crate::inputs::Inputs;
use crate::report::Status;

/// The stages that establish a usable, authorised connection to the agent: what every command
/// needs before it asks its own questions, and what it reports when that fails.
pub const CONNECTION: &[StageId] =
    &[StageId::Config, StageId::Dns, StageId::Tcp, StageId::Tls, StageId::Api, StageId::Leader, StageId::Acl];

/// What a command gets from [`connect`]: the diagnosed client, or the report naming why there
/// is none (connection stages in `check`'s shape, root cause first).
pub enum Connected {
    Ready { client: SharedClient, outcome: Outcome },
    Failed(Outcome),
}

/// Runs the connection stages and hands out the API client when none of them failed: the one
/// way every command other than `check` gets a client (same inputs, same diagnosis, same codes).
/// Warnings (a cleartext token, an even server count) do not stop a command.
pub async fn connect(inputs: &Inputs) -> Connected {
    let outcome = run_stages(inputs, CONNECTION).await;
    match (&outcome.facts.client, outcome.report.status) {
        (Some(client), s) if s != Status::Fail => Connected::Ready { client: client.clone(), outcome },
        _ => Connected::Failed(outcome),
    }
}
