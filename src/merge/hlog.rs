//! The shards' `latency.hlog` interval logs merged into one: each interval
//! moved onto the merged clock (the shard's offset added to its start), and
//! the intervals of one tag that then start in the same second added into
//! one (shards given one start time write their 5 s intervals within
//! milliseconds of each other). Values stay in microseconds, as `run` writes.

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Intervals by (tag, start on the merged clock in whole seconds): their
/// length and the histogram of all shards' values in them.
#[derive(Default)]
pub struct Merged {
    intervals: BTreeMap<(u64, String), (Duration, Histogram<u64>)>,
}

impl Merged {
    /// Adds one shard's interval log, its start `offset` after the earliest shard's.
    pub fn add(&mut self, bytes: &[u8], offset: Duration) -> Result<(), String> {
        for entry in IntervalLogIterator::new(bytes) {
            let entry = entry.map_err(|e| format!("not an HdrHistogram interval log: {e:?}"))?;
            let LogEntry::Interval(i) = entry else {
                continue;
            };
            let (tag, h) = crate::compare::load::interval_histogram(&i)
                .map_err(|e| format!("interval {e}"))?;
            let start = (i.start_timestamp() + offset).as_secs_f64().round() as u64;
            match self.intervals.get_mut(&(start, tag.clone())) {
                Some((length, m)) => {
                    *length = (*length).max(i.duration());
                    m.add(&h)
                        .map_err(|e| format!("interval of tag {tag}: cannot add: {e:?}"))?;
                }
                None => {
                    self.intervals.insert((start, tag), (i.duration(), h));
                }
            }
        }
        Ok(())
    }

    /// The merged log, its clock starting at `started` (the merged `started_at`).
    pub fn write(&self, started: SystemTime, shards: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        let comment = format!(
            "pullstorm {} latency intervals, merged from {shards} shards",
            env!("CARGO_PKG_VERSION")
        );
        if let Ok(mut w) = IntervalLogWriterBuilder::new()
            .add_comment(&comment)
            .add_comment("values in microseconds; Interval_Max in milliseconds; Tag = result.json latency metric")
            .with_start_time(started)
            .with_base_time(started)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)
        {
            for ((start, tag), (length, h)) in &self.intervals {
                let Some(tag) = Tag::new(tag) else { continue };
                let _ = w.write_histogram(h, Duration::from_secs(*start), *length, Some(tag));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::load::parse_hlog;

    fn log(values: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut ser)
            .unwrap();
        for (start, v) in values {
            let mut h = Histogram::<u64>::new_with_bounds(1, 86_400_000_000, 3).unwrap();
            h.record(*v).unwrap();
            w.write_histogram(
                &h,
                Duration::from_secs(*start),
                Duration::from_secs(5),
                Tag::new("pull"),
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn intervals_of_one_second_add_and_others_stay_apart() {
        let mut m = Merged::default();
        m.add(&log(&[(0, 1000), (5, 2000)]), Duration::ZERO)
            .unwrap();
        m.add(&log(&[(0, 3000), (5, 4000)]), Duration::from_millis(200))
            .unwrap();
        m.add(&log(&[(0, 5000)]), Duration::from_secs(3)).unwrap();
        let parsed = parse_hlog(&m.write(SystemTime::UNIX_EPOCH, 3)).unwrap();
        let pull = &parsed["pull"];
        let starts: Vec<f64> = pull.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, [0.0, 3.0, 5.0]);
        let counts: Vec<u64> = pull
            .iter()
            .map(|i| i.sample.iter().map(|s| s.1).sum())
            .collect();
        assert_eq!(counts, [2, 1, 2]);
        assert!(m.add(b"Tag=pull,1.0,x\n", Duration::ZERO).is_err());
    }
}
