/** Create a VM: its name, image, labels and shape; then its page shows it boot. */
import { ValidationError } from '@aetherium/sdk';
import { type FormEvent, useState } from 'react';
import { useNavigate } from 'react-router';
import { useSession } from '../api/session.tsx';
import { Modal } from './Modal.tsx';
import { ErrorNote, Field } from './ui.tsx';
import { DEFAULT_SHAPE, parseLabels, shapeRequest, type VmShape, VmShapeFields } from './VmShapeFields.tsx';

export function CreateVmDialog({ onClose }: { onClose: () => void }) {
  const { client } = useSession();
  const navigate = useNavigate();
  const [form, setForm] = useState({ name: '', image: '', labels: '' });
  const [shape, setShape] = useState<VmShape>(DEFAULT_SHAPE);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = (key: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm({ ...form, [key]: e.target.value });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const labels = parseLabels(form.labels);
    if (typeof labels === 'string') return setError(new Error(`Labels: ${labels}`));
    const request = shapeRequest(shape);
    if (typeof request === 'string') return setError(new Error(request));
    setBusy(true);
    setError(null);
    try {
      const vm = await client.vms.create(
        {
          ...request,
          ...(form.name.trim() ? { name: form.name.trim() } : {}),
          ...(form.image.trim() ? { image: form.image.trim() } : {}),
          ...(Object.keys(labels).length ? { labels } : {}),
        },
        { waitUntil: 'created' },
      );
      onClose();
      navigate(`/vms/${vm.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  // The server named the fields it refused: say each once, not the whole message again.
  const issues = error instanceof ValidationError ? error.fields : [];
  return (
    <Modal title="Create a VM" onClose={onClose} wide>
      <form onSubmit={submit} className="space-y-4">
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label="Name" hint="lowercase letters, digits and -; empty: one is made up">
            <input
              className="input"
              value={form.name}
              onChange={set('name')}
              pattern="[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?"
              title="1-63 lowercase letters, digits and -, starting and ending with a letter or digit"
            />
          </Field>
          <Field label="Image" hint="empty: the driver's default">
            <input className="input" value={form.image} onChange={set('image')} />
          </Field>
          <VmShapeFields shape={shape} onChange={(key, value) => setShape({ ...shape, [key]: value })} />
          <Field label="Labels" hint="of the VM: team=ci, purpose=agent">
            <input className="input" value={form.labels} onChange={set('labels')} />
          </Field>
        </div>
        {error && issues.length === 0 ? <ErrorNote error={error} title="The VM was not created" /> : null}
        {issues.length ? (
          <ul
            role="alert"
            aria-label="The VM was not created"
            className="list-disc rounded-md border border-red-300 bg-red-50 py-2 pr-2 pl-7 text-sm text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100"
          >
            {issues.map((i) => (
              <li key={`${i.field}${i.message}`}>
                <code className="font-mono">{i.field || '(request)'}</code>: {i.message}
              </li>
            ))}
          </ul>
        ) : null}
        <div className="flex justify-end gap-2">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create VM'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
