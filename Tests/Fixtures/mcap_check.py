"""Reads an MCAP file with the `mcap` package from PyPI (a reader we did not write), checking
every chunk's CRC, and prints what it found as one JSON object: the summary's statistics, the
channels and schemas, and every message (topic, times, sequence, data as text or its length)."""
import json
import sys

from mcap.reader import make_reader
from mcap.stream_reader import StreamReader


def main(path):
    with open(path, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        summary = reader.get_summary()
        stats = summary.statistics
        out = {
            "statistics": {
                "message_count": stats.message_count,
                "channel_count": stats.channel_count,
                "schema_count": stats.schema_count,
                "chunk_count": stats.chunk_count,
                "message_start_time": stats.message_start_time,
                "message_end_time": stats.message_end_time,
                "channel_message_counts": {str(k): v for k, v in stats.channel_message_counts.items()},
            },
            "channels": {str(c.id): {"topic": c.topic, "encoding": c.message_encoding, "schema": c.schema_id}
                         for c in summary.channels.values()},
            "schemas": {str(s.id): {"name": s.name, "encoding": s.encoding} for s in summary.schemas.values()},
            "chunk_indexes": len(summary.chunk_indexes),
            "messages": [],
        }
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            try:
                data = message.data.decode("utf-8")
            except UnicodeDecodeError:
                data = len(message.data)
            out["messages"].append({"topic": channel.topic, "log_time": message.log_time,
                                    "sequence": message.sequence, "data": data})
    # The same file read front to back, without the summary, as a streaming consumer would.
    with open(path, "rb") as f:
        streamed = sum(1 for record in StreamReader(f, skip_magic=False, validate_crcs=True).records if type(record).__name__ == "Message")
    out["streamed_messages"] = streamed
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
