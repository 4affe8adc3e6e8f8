//! The scan report: plain serialisable data with its own `schema_version` (see README "scan
//! JSON schema"); every renderer in `scan/render/` reads it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inputs::InputEntry;
use crate::report::{AgentSummary, CheckResult, Status, Tool};
use crate::scan::judge::{Finding, ServiceRow};
use crate::scan::prune::PruneReport;

/// Version of the scan report's JSON shape (independent of `check`'s).
pub const SCAN_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Scanned {
    pub datacenter: Option<String>,
    /// `catalog` (everything the token may read) or `services` (`--service`).
    pub scope: &'static str,
    pub services: usize,
    pub instances: usize,
    pub nodes: usize,
    /// Nothing was hidden from the token and every read succeeded.
    pub complete: bool,
    pub endpoints: Vec<String>,
}

/// One instance (listed with `--verbose`).
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub service: String,
    pub service_id: String,
    pub node: String,
    pub address: String,
    pub status: &'static str,
    /// `alive`, `gone` (failed or left) or `catalog-only`.
    pub node_state: &'static str,
    pub checks: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    pub findings: usize,
    pub warn: usize,
    pub fail: usize,
    pub by_code: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub tool: Tool,
    pub target: String,
    pub inputs: Vec<InputEntry>,
    pub agent: AgentSummary,
    pub status: Status,
    /// The connection checks `check` runs first (config … acl).
    pub connection: Vec<CheckResult>,
    pub scanned: Scanned,
    /// Per service, worst first.
    pub services: Vec<ServiceRow>,
    /// Grouped by service, worst service first.
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceRow>>,
    pub prune: PruneReport,
    pub summary: ScanSummary,
    pub elapsed_ms: u64,
    /// Stopped by Ctrl-C during `--prune` (the prune section says what was done).
    pub interrupted: bool,
}

impl ScanReport {
    /// After a prune, the instances it removed are no longer in the catalog: their findings and
    /// counts go (the prune section still lists them as removed).
    pub fn forget_removed(&mut self) {
        use crate::scan::prune::Outcome;
        let removed: std::collections::HashSet<(&str, &str)> = self
            .prune
            .actions
            .iter()
            .filter(|a| a.outcome == Outcome::Removed)
            .map(|a| (a.node.as_str(), a.service_id.as_str()))
            .collect();
        if removed.is_empty() {
            return;
        }
        let mut per_service: BTreeMap<String, usize> = BTreeMap::new();
        for a in self.prune.actions.iter().filter(|a| a.outcome == Outcome::Removed) {
            *per_service.entry(a.service.clone()).or_default() += 1;
        }
        self.findings.retain(|f| match (&f.node, &f.service_id) {
            (Some(n), Some(id)) => !removed.contains(&(n.as_str(), id.as_str())),
            _ => true,
        });
        self.scanned.instances = self.scanned.instances.saturating_sub(removed.len());
        for row in &mut self.services {
            if let Some(&n) = per_service.get(&row.name) {
                // Only critical instances are ever removed, and each one counted as stale.
                row.instances = row.instances.saturating_sub(n);
                row.critical = row.critical.saturating_sub(n);
                row.stale = row.stale.saturating_sub(n);
            }
            row.findings = self.findings.iter().filter(|f| f.service == row.name).count();
            row.status = self
                .findings
                .iter()
                .filter(|f| f.service == row.name)
                .map(|f| f.result.status)
                .max()
                .unwrap_or(Status::Pass);
        }
        self.services.retain(|r| r.instances > 0);
    }

    /// Orders services and findings worst first and fills the status and summary.
    pub fn finish(&mut self) {
        let rank = |s: &ServiceRow| {
            (std::cmp::Reverse(s.status), std::cmp::Reverse(s.findings), std::cmp::Reverse(s.critical))
        };
        self.services.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
        let position: BTreeMap<&str, usize> =
            self.services.iter().enumerate().map(|(n, s)| (s.name.as_str(), n)).collect();
        self.findings.sort_by(|a, b| {
            // Findings about the scan itself (no service) first, then by service rank.
            let pa = if a.service.is_empty() {
                0
            } else {
                1 + position.get(a.service.as_str()).copied().unwrap_or(usize::MAX - 1)
            };
            let pb = if b.service.is_empty() {
                0
            } else {
                1 + position.get(b.service.as_str()).copied().unwrap_or(usize::MAX - 1)
            };
            pa.cmp(&pb)
                .then_with(|| a.service.cmp(&b.service))
                .then_with(|| b.result.status.cmp(&a.result.status))
                .then_with(|| a.result.code.cmp(&b.result.code))
                .then_with(|| a.service_id.cmp(&b.service_id))
        });
        let mut summary = ScanSummary::default();
        for f in &mut self.findings {
            f.result.stage = "scan";
        }
        for f in &self.findings {
            summary.findings += 1;
            match f.result.status {
                Status::Fail => summary.fail += 1,
                Status::Warn => summary.warn += 1,
                _ => {}
            }
            if let Some(code) = f.result.code {
                *summary.by_code.entry(code).or_default() += 1;
            }
        }
        let connection = self.connection.iter().filter(|c| c.status != Status::Skip).map(|c| c.status).max();
        let worst = self.findings.iter().map(|f| f.result.status).chain(connection).max().unwrap_or(Status::Pass);
        self.status = if worst == Status::Skip { Status::Pass } else { worst };
        self.summary = summary;
    }

    pub fn exit_status(&self, fail_on: crate::report::FailOn) -> crate::ExitStatus {
        if self.interrupted {
            return crate::ExitStatus::Interrupted;
        }
        match (self.status, fail_on) {
            (Status::Fail, _) | (Status::Warn, crate::report::FailOn::Warn) => crate::ExitStatus::Findings,
            _ => crate::ExitStatus::Clean,
        }
    }
}
