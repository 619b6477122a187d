//! `plexusctl network validate -f FILE`: every validation rule, nothing stored. Exit
//! status 1 when a definition breaks a rule (`create` and `apply` refuse the same file
//! with the same lines and status). A CIDR written with host bits set is valid (the host
//! bits are ignored) but gets a note, since it usually is a typo.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use plexus_model::Operation;
use serde::Serialize;
use serde_json::Value;

use super::{Parsed, read_file};
use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{out_err, stdout, write_structured};

/// Arguments of `network validate`.
#[derive(Debug, Args)]
pub struct Validate {
    /// Network definition file (YAML or JSON; `-` for stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Validate as updates of existing networks (DANM `alloc` bitmaps allowed).
    #[arg(long)]
    pub existing: bool,
}

/// The verdict on one definition.
#[derive(Debug, Serialize)]
pub struct Verdict {
    network: String,
    source: String,
    valid: bool,
    problems: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

impl Verdict {
    /// The verdict on a parsed definition.
    pub fn of(p: &Parsed) -> Verdict {
        Verdict {
            valid: p.problems.is_empty(),
            network: p.name.clone(),
            source: p.source.clone(),
            problems: p.problems.clone(),
            notes: host_bit_notes(&p.definition),
        }
    }
}

/// Writes verdicts as `validate` prints them.
pub fn write_verdicts(
    out: &mut impl std::io::Write,
    format: OutputFormat,
    verdicts: &[Verdict],
) -> CtlResult<()> {
    match format {
        OutputFormat::Table => {
            for v in verdicts {
                let state = if v.valid { "valid" } else { "INVALID" };
                writeln!(out, "{}: {state} ({})", v.network, v.source).map_err(out_err)?;
                for problem in &v.problems {
                    writeln!(out, "  - {problem}").map_err(out_err)?;
                }
                for note in &v.notes {
                    writeln!(out, "  note: {note}").map_err(out_err)?;
                }
            }
            Ok(())
        }
        format => write_structured(out, format, verdicts),
    }
}

/// Notes on CIDRs of a definition written with host bits set (`10.0.0.7/24` means
/// `10.0.0.0/24`): `cidr`, `net6`, `allocation_pool_v6.cidr` and route destinations.
pub fn host_bit_notes(definition: &Value) -> Vec<String> {
    let Some(options) = definition.pointer("/spec/Options") else {
        return Vec::new();
    };
    let mut fields: Vec<(String, &str)> = Vec::new();
    for key in ["cidr", "net6"] {
        if let Some(text) = options.get(key).and_then(Value::as_str) {
            fields.push((key.to_string(), text));
        }
    }
    if let Some(text) = options
        .pointer("/allocation_pool_v6/cidr")
        .and_then(Value::as_str)
    {
        fields.push(("allocation_pool_v6.cidr".to_string(), text));
    }
    for key in ["routes", "routes6"] {
        if let Some(routes) = options.get(key).and_then(Value::as_object) {
            for dst in routes.keys() {
                fields.push((format!("{key} destination"), dst));
            }
        }
    }
    fields
        .into_iter()
        .filter_map(|(field, text)| {
            let net: ipnet::IpNet = text.trim().parse().ok()?;
            (net.trunc() != net)
                .then(|| format!("{field} {text} has host bits set; it means {}", net.trunc()))
        })
        .collect()
}

impl Validate {
    /// Runs the command.
    pub fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let op = if self.existing {
            Operation::Update
        } else {
            Operation::Create
        };
        let mut verdicts = Vec::new();
        for file in &self.files {
            verdicts.extend(read_file(file, op)?.iter().map(Verdict::of));
        }
        let mut out = stdout();
        write_verdicts(&mut out, ctx.output(), &verdicts)?;
        out.flush().map_err(out_err)?;
        let broken = verdicts.iter().filter(|v| !v.valid).count();
        if broken > 0 {
            return Err(CtlError::Problems(format!(
                "{broken} of {} network definition(s) invalid",
                verdicts.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn host_bits_are_noted_per_field() {
        let def = json!({"spec": {"Options": {
            "cidr": "10.91.0.7/24", "net6": "fd91::/64",
            "allocation_pool_v6": {"cidr": "fd91::5/120"},
            "routes": {"10.99.1.0/16": "10.91.0.1", "10.98.0.0/16": "10.91.0.1"}}}});
        let notes = host_bit_notes(&def);
        assert_eq!(
            notes,
            [
                "cidr 10.91.0.7/24 has host bits set; it means 10.91.0.0/24",
                "allocation_pool_v6.cidr fd91::5/120 has host bits set; it means fd91::/120",
                "routes destination 10.99.1.0/16 has host bits set; it means 10.99.0.0/16",
            ]
        );
        assert!(host_bit_notes(&json!({"kind": "x"})).is_empty());
    }
}
