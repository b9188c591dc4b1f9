//! Chat chunks written as the Responses API's event sequence, numbered, keeping what
//! `response.completed` repeats within the answer cap.

use super::*;

/// An output item being streamed.
enum Open {
    Message { id: String, text: String },
    Reasoning { id: String, text: String },
    Call { id: String, call_id: String, name: String, arguments: String, index: u64 },
}

/// Chat chunks written as the Responses event sequence, numbered: `response.created`,
/// `response.in_progress`, output items added, their deltas, done, and `response.completed`
/// (or `.incomplete`), whose response carries every output item and the usage.
///
/// Everything written is kept for `response.completed`: past the call's answer cap
/// (`labels.max_kept_bytes`) the stream ends with an error instead.
pub struct ResponsesWriter {
    labels: AnswerLabels,
    sequence: u64,
    started: bool,
    open: Option<Open>,
    done: Vec<Value>,
    finish_reason: Option<String>,
    /// Bytes of output kept (text, reasoning, arguments, names).
    kept: usize,
    /// The request's namespaced tools, to name calls back.
    names: std::sync::Arc<ToolNames>,
}

impl ResponsesWriter {
    pub fn new(labels: &AnswerLabels, names: std::sync::Arc<ToolNames>) -> Self {
        Self {
            names,
            labels: labels.clone(),
            sequence: 0,
            started: false,
            open: None,
            done: Vec::new(),
            finish_reason: None,
            kept: 0,
        }
    }

    /// Counts `bytes` more kept; `Err` past the cap.
    fn keep(&mut self, bytes: usize) -> Result<(), StreamFault> {
        self.kept = self.kept.saturating_add(bytes);
        if self.kept > self.labels.max_kept_bytes { Err(StreamFault::TooLarge) } else { Ok(()) }
    }

    fn emit(&mut self, name: &str, mut data: Value, out: &mut Vec<Bytes>) {
        data["type"] = Value::String(name.to_owned());
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = response_object(&self.labels, "in_progress", Vec::new(), None);
        self.emit("response.created", json!({"response": response}), out);
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    fn output_index(&self) -> usize {
        self.done.len()
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        let Some(open) = self.open.take() else { return };
        let index = self.output_index();
        let item = match open {
            Open::Message { id, text } => {
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                    out,
                );
                message_item(&id, &text, "completed")
            }
            Open::Reasoning { id, text } => {
                self.emit(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    out,
                );
                reasoning_item(&id, &text)
            }
            Open::Call { id, call_id, name, arguments, .. } => {
                let own = self.names.split(&name).map_or(name.as_str(), |(_, own)| own).to_owned();
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": own, "arguments": arguments}),
                    out,
                );
                call_item(&self.names, &id, &call_id, &name, &arguments, "completed")
            }
        };
        self.emit("response.output_item.done", json!({"output_index": index, "item": item}), out);
        self.done.push(item);
    }

    fn open_item(&mut self, open: Open, out: &mut Vec<Bytes>) {
        self.close(out);
        let index = self.output_index();
        let item = match &open {
            Open::Message { id, .. } => message_item(id, "", "in_progress"),
            Open::Reasoning { id, .. } => json!({"type": "reasoning", "id": id, "summary": []}),
            Open::Call { id, call_id, name, .. } => call_item(&self.names, id, call_id, name, "", "in_progress"),
        };
        self.emit("response.output_item.added", json!({"output_index": index, "item": item}), out);
        match &open {
            Open::Message { id, .. } => self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                out,
            ),
            Open::Reasoning { id, .. } => self.emit(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                out,
            ),
            Open::Call { .. } => {}
        }
        self.open = Some(open);
    }
}

impl ChatSink for ResponsesWriter {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Result<(), StreamFault> {
        self.start(out);
        let delta = Delta::of(chunk);
        let size = delta.text.map_or(0, str::len)
            + delta.reasoning.map_or(0, str::len)
            + delta
                .tool_calls
                .iter()
                .map(|(_, id, name, args)| id.map_or(0, str::len) + name.map_or(0, str::len) + args.len())
                .sum::<usize>();
        self.keep(size)?;
        if let Some(reasoning) = delta.reasoning {
            if !matches!(self.open, Some(Open::Reasoning { .. })) {
                let n = self.output_index() + usize::from(self.open.is_some());
                self.open_item(Open::Reasoning { id: format!("rs_{}_{n}", self.labels.id), text: String::new() }, out);
            }
            let n = self.output_index();
            if let Some(Open::Reasoning { id, text }) = &mut self.open {
                text.push_str(reasoning);
                let data = json!({"item_id": id, "output_index": n, "summary_index": 0, "delta": reasoning});
                self.emit("response.reasoning_summary_text.delta", data, out);
            }
        }
        if let Some(piece) = delta.text {
            if !matches!(self.open, Some(Open::Message { .. })) {
                let n = self.output_index() + usize::from(self.open.is_some());
                self.open_item(Open::Message { id: format!("msg_{}_{n}", self.labels.id), text: String::new() }, out);
            }
            let n = self.output_index();
            if let Some(Open::Message { id, text }) = &mut self.open {
                text.push_str(piece);
                let data =
                    json!({"item_id": id, "output_index": n, "content_index": 0, "delta": piece, "logprobs": []});
                self.emit("response.output_text.delta", data, out);
            }
        }
        for (index, call_id, name, arguments) in delta.tool_calls {
            let same = matches!(&self.open, Some(Open::Call { index: i, .. }) if *i == index);
            if !same {
                let n = self.output_index() + usize::from(self.open.is_some());
                let open = Open::Call {
                    id: format!("fc_{}_{n}", self.labels.id),
                    call_id: call_id.unwrap_or_default().to_owned(),
                    name: name.unwrap_or_default().to_owned(),
                    arguments: String::new(),
                    index,
                };
                self.open_item(open, out);
            }
            let n = self.output_index();
            if !arguments.is_empty()
                && let Some(Open::Call { id, arguments: all, .. }) = &mut self.open
            {
                all.push_str(arguments);
                let data = json!({"item_id": id, "output_index": n, "delta": arguments});
                self.emit("response.function_call_arguments.delta", data, out);
            }
        }
        if let Some(reason) = delta.finish_reason {
            self.finish_reason = Some(reason.to_owned());
        }
        Ok(())
    }

    fn end(&mut self, tokens: TokenCounts, out: &mut Vec<Bytes>) {
        self.start(out);
        self.close(out);
        let incomplete = self.finish_reason.as_deref() == Some("length");
        let status = if incomplete { "incomplete" } else { "completed" };
        let response = response_object(&self.labels, status, std::mem::take(&mut self.done), Some(&tokens));
        let name = if incomplete { "response.incomplete" } else { "response.completed" };
        self.emit(name, json!({"response": response}), out);
    }

    fn fail(&mut self, message: &str, class: perpetuo_types::ErrorClass, out: &mut Vec<Bytes>) {
        self.emit("error", json!({"code": class.as_str(), "message": message, "param": null}), out);
        let mut response = response_object(&self.labels, "failed", std::mem::take(&mut self.done), None);
        response["error"] = json!({"code": "server_error", "message": message});
        self.emit("response.failed", json!({"response": response}), out);
    }
}
