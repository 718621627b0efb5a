//! What `pullstorm merge` refuses: results that are not shards, shards of
//! different scenarios (the rule `pullstorm compare` applies, start time
//! aside), a shard given twice, mixed shard counts, and a set with shards
//! missing (unless the caller allows a partial merge). Every refusal names
//! the files.

use crate::compare::load::scenario_mismatch;
use crate::result::model::ShardInfo;
use crate::result::ResultDoc;

/// One input to merge: the file it came from and its result.
pub struct Part<'a> {
    pub file: &'a str,
    pub doc: &'a ResultDoc,
}

/// Checks the parts (in any order) form one sharded storm; returns the
/// indexes of the missing shards (empty when complete), or why not.
pub fn check(parts: &[Part<'_>], allow_partial: bool) -> Result<Vec<u32>, String> {
    let mut shards: Vec<(&ShardInfo, &str)> = Vec::with_capacity(parts.len());
    for p in parts {
        if !p.doc.merged_from.is_empty() {
            return Err(format!(
                "{}: is already a merged result (merged_from is set); merge the shards' own results",
                p.file
            ));
        }
        let Some(shard) = &p.doc.shard else {
            return Err(format!(
                "{}: not a shard's result (no `shard` object): only results of `pullstorm run --shard I/N` merge",
                p.file
            ));
        };
        shards.push((shard, p.file));
    }
    let Some((first, first_file)) = shards.first().copied() else {
        return Err("nothing to merge: give the shards' result.json files or folders".into());
    };
    for (s, file) in &shards[1..] {
        if s.count != first.count {
            return Err(format!(
                "mixed shard counts: {first_file} is shard {}/{}, {file} is shard {}/{}",
                first.index, first.count, s.index, s.count
            ));
        }
    }
    let mut by_index: Vec<Option<&str>> = vec![None; first.count as usize];
    for (s, file) in &shards {
        match by_index.get_mut(s.index as usize) {
            None => {
                return Err(format!(
                    "{file}: shard index {} is out of range for {} shards",
                    s.index, s.count
                ))
            }
            Some(Some(other)) => {
                return Err(format!(
                    "shard {}/{} given twice (overlapping shards): {other} and {file}",
                    s.index, s.count
                ))
            }
            Some(slot) => *slot = Some(file),
        }
    }
    for p in &parts[1..] {
        if let Some(why) = scenario_mismatch(parts[0].doc, p.doc) {
            return Err(format!(
                "{} and {} are shards of different scenarios: {why}",
                parts[0].file, p.file
            ));
        }
    }
    let missing: Vec<u32> = (0..first.count)
        .filter(|i| by_index[*i as usize].is_none())
        .collect();
    if !missing.is_empty() && !allow_partial {
        let list: Vec<String> = missing.iter().map(|i| i.to_string()).collect();
        let given: Vec<String> = shards
            .iter()
            .map(|(s, f)| format!("{} from {f}", s.index))
            .collect();
        return Err(format!(
            "shard{} {} of {} missing (given: {}); merge every shard, or pass --allow-partial for a result marked incomplete",
            if missing.len() == 1 { "" } else { "s" },
            list.join(", "),
            first.count,
            given.join(", ")
        ));
    }
    Ok(missing)
}
