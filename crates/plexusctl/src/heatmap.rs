//! `showalloc --map`: a pool drawn as a grid of blocks, each shaded by how full it is.
//!
//! A pool is cut into at most [`MAX_CELLS`] equal, aligned blocks; each block costs one
//! indexed count, so a /8 draws as fast as a /24.

use std::io::Write;

use ipnet::IpNet;
use plexus_ipam_core::Range;
use plexus_ipam_core::addr::{first_key, from_key, key};
use plexus_store::Store;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::CtlResult;
use crate::netdef::{NetworkDef, Pool};
use crate::output::{SHADES, out_err, shade, stdout, write_structured};

/// Most cells drawn for one pool.
pub const MAX_CELLS: u32 = 4096;
/// Cells per row.
pub const ROW_CELLS: usize = 64;

/// One block of a pool and its fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// The block.
    pub cidr: IpNet,
    /// Addresses of the block that can be handed out.
    pub capacity: u128,
    /// Addresses of the block that are held.
    pub allocated: u64,
}

impl Cell {
    /// Held share of the capacity (held addresses outside it count as full).
    pub fn ratio(&self) -> f64 {
        if self.capacity == 0 {
            if self.allocated > 0 { 1.0 } else { 0.0 }
        } else {
            self.allocated as f64 / self.capacity as f64
        }
    }
}

/// The block prefix length for drawing `cidr` in at most [`MAX_CELLS`] cells.
pub fn cell_prefix(cidr: &IpNet) -> u8 {
    let cell_bits = MAX_CELLS.ilog2() as u8;
    let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
    cidr.prefix_len() + host_bits.min(cell_bits)
}

/// The blocks of `pool` at `prefix`, in address order.
pub fn blocks(pool: &Pool, prefix: u8) -> Vec<IpNet> {
    pool.cidr
        .subnets(prefix.max(pool.cidr.prefix_len()))
        .map(|s| s.collect())
        .unwrap_or_default()
}

/// Allocatable addresses of `pool` inside `block` (its start..end clipped to the block,
/// minus reserved and excluded addresses).
pub fn capacity_in(pool: &Pool, block: &IpNet) -> u128 {
    let lo = key(pool.start).max(first_key(block));
    let hi = key(pool.end).min(plexus_ipam_core::addr::last_key(block));
    if lo > hi {
        return 0;
    }
    let gateway = pool.gateways.first().copied();
    match Range::new(
        pool.cidr,
        Some(from_key(lo)),
        Some(from_key(hi)),
        gateway,
        pool.exclude.clone(),
    ) {
        Ok(range) => {
            // Further gateways (routes) are reserved too.
            let extra = pool
                .gateways
                .iter()
                .skip(1)
                .filter(|gw| range.is_allocatable(**gw))
                .count();
            range.capacity().saturating_sub(extra as u128)
        }
        Err(_) => 0,
    }
}

/// Counts the cells of one pool.
pub async fn cells(store: &dyn Store, network: &str, pool: &Pool) -> CtlResult<Vec<Cell>> {
    let prefix = cell_prefix(&pool.cidr);
    let mut cells = Vec::new();
    for block in blocks(pool, prefix) {
        let allocated = store
            .count_between(network, block.network(), block.broadcast())
            .await?;
        cells.push(Cell {
            cidr: block,
            capacity: capacity_in(pool, &block),
            allocated,
        });
    }
    Ok(cells)
}

/// Prints the map of every pool in `pools`.
pub async fn show(
    store: &dyn Store,
    def: &NetworkDef,
    pools: &[&Pool],
    format: OutputFormat,
) -> CtlResult<()> {
    let mut out = stdout();
    let mut maps = Vec::new();
    for pool in pools {
        let cells = cells(store, &def.name, pool).await?;
        if format == OutputFormat::Table {
            draw(&mut out, pool, &cells).map_err(out_err)?;
        } else {
            maps.push(serde_json::json!({"cidr": pool.cidr, "cells": cells}));
        }
    }
    if format != OutputFormat::Table {
        write_structured(
            &mut out,
            format,
            &serde_json::json!({"network": def.name, "pools": maps}),
        )?;
    }
    out.flush().map_err(out_err)
}

/// Draws one pool's cells as rows of [`ROW_CELLS`], each labelled with its first address.
pub fn draw(out: &mut impl Write, pool: &Pool, cells: &[Cell]) -> std::io::Result<()> {
    let held: u64 = cells.iter().map(|c| c.allocated).sum();
    let capacity: u128 = cells.iter().map(|c| c.capacity).sum();
    let block = cells
        .first()
        .map_or(pool.cidr.prefix_len(), |c| c.cidr.prefix_len());
    writeln!(
        out,
        "{}: {held} of {capacity} addresses held ({}%), one cell per /{block}",
        pool.cidr,
        crate::output::percent(u128::from(held), capacity)
    )?;
    writeln!(
        out,
        "legend: {} empty  {} <1/3  {} <2/3  {} <full  {} full",
        SHADES[0], SHADES[1], SHADES[2], SHADES[3], SHADES[4]
    )?;
    let label_width = cells
        .iter()
        .map(|c| c.cidr.network().to_string().len())
        .max()
        .unwrap_or(0);
    for row in cells.chunks(ROW_CELLS) {
        let line: String = row.iter().map(|c| shade(c.ratio())).collect();
        let first = row
            .first()
            .map(|c| c.cidr.network().to_string())
            .unwrap_or_default();
        writeln!(out, "{first:>label_width$} {line}")?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str) -> Pool {
        Pool::from_cidr(cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn cell_prefix_caps_the_cell_count() {
        assert_eq!(cell_prefix(&"10.0.0.0/8".parse().unwrap()), 20);
        assert_eq!(cell_prefix(&"10.0.0.0/24".parse().unwrap()), 32);
        assert_eq!(cell_prefix(&"fd00::/64".parse().unwrap()), 76);
        assert_eq!(blocks(&pool("10.0.0.0/8"), 20).len(), 4096);
        assert_eq!(blocks(&pool("10.0.0.0/30"), 32).len(), 4);
    }

    #[test]
    fn capacity_skips_reserved_addresses() {
        let p = pool("10.0.0.0/24");
        assert_eq!(capacity_in(&p, &"10.0.0.0/26".parse().unwrap()), 63);
        assert_eq!(capacity_in(&p, &"10.0.0.64/26".parse().unwrap()), 64);
        assert_eq!(capacity_in(&p, &"10.0.0.192/26".parse().unwrap()), 63);
        assert_eq!(capacity_in(&p, &"10.0.0.0/32".parse().unwrap()), 0);
        let mut gw = p.clone();
        gw.gateways = vec!["10.0.0.1".parse().unwrap(), "10.0.0.70".parse().unwrap()];
        assert_eq!(capacity_in(&gw, &"10.0.0.0/26".parse().unwrap()), 62);
        assert_eq!(capacity_in(&gw, &"10.0.0.64/26".parse().unwrap()), 63);
    }

    #[test]
    fn draws_rows_with_labels() {
        let p = pool("10.0.0.0/30");
        let cells: Vec<Cell> = blocks(&p, 32)
            .into_iter()
            .enumerate()
            .map(|(i, cidr)| Cell {
                cidr,
                capacity: capacity_in(&p, &cidr),
                allocated: u64::from(i == 1),
            })
            .collect();
        let mut out = Vec::new();
        draw(&mut out, &p, &cells).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("10.0.0.0/30: 1 of 2 addresses held (50.0%)"),
            "{text}"
        );
        assert!(text.contains("10.0.0.0 ·█··"), "{text}");
    }
}
