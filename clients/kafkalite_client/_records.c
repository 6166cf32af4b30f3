/* kafkalite_client._records: decodes the records of a Kafka v2 record batch into ConsumerRecords.
 *
 * The C twin of fetched.decode_records_py, which stays the reference: same arguments, same records,
 * DecodeError for the same inputs (tests/client/test_records_accel.py compares the two). The batch
 * header and decompression stay in Python; this only walks the (decompressed) records.
 *
 * Each record is  length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
 *                 keyLength varint | key | valueLength varint | value | headerCount varint |
 *                 headers (keyLength varint | key (UTF-8) | valueLength varint | value) ...
 * with zig-zag varints of at most 10 bytes, and -1 as the length of a null key or value.
 *
 * The GIL is held throughout: every record becomes Python objects.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h> /* PyMemberDef flags; 3.12 moved them into Python.h under these names */
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

/* kafkalite.protocol.errors.DecodeError, imported at module init. */
static PyObject *DecodeError;

/* ConsumerRecord's fields, in the order its __init__ takes them. */
#define N_FIELDS 8
static const char *const FIELD_NAMES[N_FIELDS] = {
    "topic", "partition", "offset", "timestamp", "key", "value", "headers", "timestamp_type",
};

/* A cursor over the records buffer. `end` is where reads must stop: the end of the buffer while reading
 * a record's length, then the end of that record. */
typedef struct {
    const uint8_t *buf;
    Py_ssize_t pos;
    Py_ssize_t end;
    long long base_offset; /* for error messages */
} Reader;

static int
malformed(const Reader *r, const char *what)
{
    PyErr_Format(DecodeError, "malformed record in batch at offset %lld: %s", r->base_offset, what);
    return -1;
}

/* A zig-zag varint of up to 10 bytes (64 bits). Returns 0, or -1 with DecodeError set. */
static inline int
read_varint(Reader *r, int64_t *out)
{
    Py_ssize_t pos = r->pos;
    uint64_t n = 0;
    if (pos < r->end && r->buf[pos] < 0x80) { /* one byte: by far the most common */
        n = r->buf[pos++];
    }
    else {
        for (int shift = 0;; shift += 7) {
            if (pos >= r->end)
                return malformed(r, "varint runs past the end of the record");
            uint8_t b = r->buf[pos++];
            /* The tenth byte holds bit 63 only: anything more overflows 64 bits or goes on to an 11th. */
            if (shift == 63 && b > 1)
                return malformed(r, "varint is too long");
            n |= (uint64_t)(b & 0x7F) << shift;
            if (b < 0x80)
                break;
        }
    }
    r->pos = pos;
    *out = (int64_t)(n >> 1) ^ -(int64_t)(n & 1);
    return 0;
}

/* A length-prefixed byte string in the current record: *data is NULL for a null one (length -1). */
static inline int
read_span(Reader *r, const char **data, Py_ssize_t *len)
{
    int64_t n;
    if (read_varint(r, &n) < 0)
        return -1;
    if (n == -1) {
        *data = NULL;
        *len = 0;
        return 0;
    }
    if (n < 0)
        return malformed(r, "record field length is negative");
    if (n > r->end - r->pos)
        return malformed(r, "field length runs past the record");
    *data = (const char *)r->buf + r->pos;
    *len = (Py_ssize_t)n;
    r->pos += (Py_ssize_t)n;
    return 0;
}

static PyObject *
bytes_or_none(const char *data, Py_ssize_t len)
{
    if (data == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(data, len);
}

/* The record's headers as a new list of (str, bytes | None) tuples. */
static PyObject *
read_headers(Reader *r)
{
    int64_t count;
    if (read_varint(r, &count) < 0)
        return NULL;
    /* Each header takes at least two bytes, so this also keeps a corrupt count from allocating much. */
    if (count < 0 || count > r->end - r->pos) {
        malformed(r, "bad record header count");
        return NULL;
    }
    PyObject *headers = PyList_New((Py_ssize_t)count);
    if (headers == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < (Py_ssize_t)count; i++) {
        const char *key_data, *value_data;
        Py_ssize_t key_len, value_len;
        if (read_span(r, &key_data, &key_len) < 0)
            goto error;
        if (key_data == NULL) {
            malformed(r, "null header key");
            goto error;
        }
        PyObject *key = PyUnicode_DecodeUTF8(key_data, key_len, NULL);
        if (key == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                /* As the Python decoder says it: DecodeError with the codec's explanation. */
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_NormalizeException(&type, &value, &tb);
                PyErr_Format(DecodeError, "malformed record in batch at offset %lld: %S", r->base_offset,
                             value);
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(tb);
            }
            goto error;
        }
        if (read_span(r, &value_data, &value_len) < 0) {
            Py_DECREF(key);
            goto error;
        }
        PyObject *value = bytes_or_none(value_data, value_len);
        if (value == NULL) {
            Py_DECREF(key);
            goto error;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, key);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(headers, i, pair);
    }
    return headers;
error:
    Py_DECREF(headers); /* list_dealloc skips the slots not filled yet */
    return NULL;
}

/* How to make a record of a given class. ConsumerRecord is a slots dataclass whose generated __init__
 * only stores its arguments, so writing the slots of a freshly allocated instance gives the same object
 * as calling the class, at half the cost per record (no __init__ frame, no attribute stores). Classes that
 * do not look like that are called instead. find_slot_offsets cannot tell a hand-written __init__ in the
 * dataclass; test_records_accel.py would, as it compares these records with ones made by calling it. */
typedef struct {
    PyObject *cls;
    int fill_slots;
    Py_ssize_t slot_offsets[N_FIELDS];
} RecordMaker;

/* For the last class seen (the consumer always passes the same one), holding a reference to it. Each call
 * works from a copy: finalizers run by the GC can switch threads mid-call, and another thread's call with
 * another class must not change how this one builds its records. */
static RecordMaker cached_maker;

/* 1 when instances of cls can be made by filling its slots (offsets stored), 0 when not, -1 on error. */
static int
find_slot_offsets(PyObject *cls, Py_ssize_t offsets[N_FIELDS])
{
    if (!PyType_Check(cls))
        return 0;
    PyTypeObject *type = (PyTypeObject *)cls;
    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_alloc == NULL)
        return 0;

    int result = 0;
    PyObject *fields = NULL, *params = NULL, *init = NULL, *descr = NULL;

    /* The dataclass made __init__, it has no __post_init__, and its fields are ours, in order. */
    if (PyObject_HasAttrString(cls, "__post_init__"))
        goto done;
    params = PyObject_GetAttrString(cls, "__dataclass_params__");
    if (params == NULL)
        goto not_applicable;
    init = PyObject_GetAttrString(params, "init");
    if (init == NULL)
        goto not_applicable;
    if (init != Py_True)
        goto done;
    fields = PyObject_GetAttrString(cls, "__dataclass_fields__");
    if (fields == NULL)
        goto not_applicable;
    if (!PyDict_Check(fields) || PyDict_GET_SIZE(fields) != N_FIELDS)
        goto done;
    Py_ssize_t pos = 0, i = 0;
    PyObject *name, *field;
    while (PyDict_Next(fields, &pos, &name, &field)) {
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, FIELD_NAMES[i]) != 0)
            goto done;
        i++;
    }

    /* Every field is a writable object slot of this class's layout. */
    for (i = 0; i < N_FIELDS; i++) {
        descr = PyObject_GetAttrString(cls, FIELD_NAMES[i]);
        if (descr == NULL)
            goto not_applicable;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type))
            goto done;
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != Py_T_OBJECT_EX || (member->flags & Py_READONLY) ||
            !PyType_IsSubtype(type, PyDescr_TYPE(descr)))
            goto done;
        offsets[i] = member->offset;
        Py_CLEAR(descr);
    }
    result = 1;
    goto done;

not_applicable:
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
        result = -1;
        goto done;
    }
    PyErr_Clear();
done:
    Py_XDECREF(descr);
    Py_XDECREF(fields);
    Py_XDECREF(init);
    Py_XDECREF(params);
    return result;
}

/* How to make records of cls (borrowed: the caller's argument, alive for the whole call). */
static int
get_maker(PyObject *cls, RecordMaker *maker)
{
    if (cached_maker.cls == cls) {
        *maker = cached_maker;
        return 0;
    }
    maker->cls = cls;
    maker->fill_slots = find_slot_offsets(cls, maker->slot_offsets);
    if (maker->fill_slots < 0)
        return -1;
    PyObject *old = cached_maker.cls;
    cached_maker = *maker;
    cached_maker.cls = Py_NewRef(cls);
    Py_XDECREF(old); /* last: it may run arbitrary code */
    return 0;
}

/* A new record from N_FIELDS new references, which it takes over (also on failure). */
static PyObject *
make_record(const RecordMaker *maker, PyObject *fields[N_FIELDS])
{
    PyObject *record;
    if (maker->fill_slots) {
        PyTypeObject *type = (PyTypeObject *)maker->cls;
        record = type->tp_alloc(type, 0);
        if (record != NULL) {
            for (int i = 0; i < N_FIELDS; i++)
                *(PyObject **)((char *)record + maker->slot_offsets[i]) = fields[i];
            return record;
        }
    }
    else {
        record = PyObject_Vectorcall(maker->cls, fields, N_FIELDS, NULL);
    }
    for (int i = 0; i < N_FIELDS; i++)
        Py_DECREF(fields[i]);
    return record;
}

/* base + delta as an int object; Python ints do not overflow, so neither may this. */
static PyObject *
add_as_int(long long base, int64_t delta)
{
    if ((delta > 0 && base > LLONG_MAX - delta) || (delta < 0 && base < LLONG_MIN - delta)) {
        PyObject *a = PyLong_FromLongLong(base), *b = PyLong_FromLongLong(delta), *sum = NULL;
        if (a != NULL && b != NULL)
            sum = PyNumber_Add(a, b);
        Py_XDECREF(a);
        Py_XDECREF(b);
        return sum;
    }
    return PyLong_FromLongLong(base + delta);
}

/* Is base + delta >= min, computed without overflowing? */
static int
offset_at_least(long long base, int64_t delta, long long min)
{
    if (delta > 0 && base > LLONG_MAX - delta)
        return 1; /* beyond any long long */
    if (delta < 0 && base < LLONG_MIN - delta)
        return 0;
    return base + delta >= min;
}

PyDoc_STRVAR(decode_records_doc,
"decode_records(data, count, base_offset, base_timestamp, log_append_time, max_timestamp, topic,\n"
"               partition, min_offset, record_class, out)\n"
"--\n\n"
"Decode `count` records from `data` (the decompressed records of a v2 batch; any buffer) and append\n"
"a record_class(topic, partition, offset, timestamp, key, value, headers, timestamp_type) to `out` for\n"
"each at or after min_offset. Raises DecodeError for malformed records or bytes left after the last.");

static PyObject *
decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_Format(PyExc_TypeError, "decode_records() takes 11 positional arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *data = args[0];
    Py_ssize_t count;
    long long base_offset, base_ts, min_offset;
    if ((count = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred())
        return NULL;
    if ((base_offset = PyLong_AsLongLong(args[2])) == -1 && PyErr_Occurred())
        return NULL;
    if ((base_ts = PyLong_AsLongLong(args[3])) == -1 && PyErr_Occurred())
        return NULL;
    if ((min_offset = PyLong_AsLongLong(args[8])) == -1 && PyErr_Occurred())
        return NULL;
    int log_append = PyObject_IsTrue(args[4]);
    if (log_append < 0)
        return NULL;
    PyObject *max_ts = args[5], *topic = args[6], *partition = args[7], *record_cls = args[9];
    PyObject *out = args[10];
    RecordMaker maker;
    if (get_maker(record_cls, &maker) < 0)
        return NULL;

    /* A list is appended to directly; anything else (the consumer's deque) through its append method. */
    PyObject *append = NULL;
    if (!PyList_CheckExact(out)) {
        append = PyObject_GetAttrString(out, "append");
        if (append == NULL)
            return NULL;
    }
    PyObject *ts_type = PyLong_FromLong(log_append ? 1 : 0); /* a cached small int */

    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        Py_XDECREF(append);
        Py_DECREF(ts_type);
        return NULL;
    }
    Reader r = {(const uint8_t *)view.buf, 0, view.len, base_offset};
    const Py_ssize_t size = view.len;

    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t length, ts_delta, off_delta;
        const char *key_data, *value_data;
        Py_ssize_t key_len, value_len;

        r.end = size;
        if (read_varint(&r, &length) < 0)
            goto error;
        if (length <= 0 || length > size - r.pos) {
            PyErr_SetString(DecodeError, "record length runs past the batch");
            goto error;
        }
        r.end = r.pos + (Py_ssize_t)length;
        r.pos += 1; /* attributes: unused in v2 */
        if (read_varint(&r, &ts_delta) < 0 || read_varint(&r, &off_delta) < 0 ||
            read_span(&r, &key_data, &key_len) < 0 || read_span(&r, &value_data, &value_len) < 0)
            goto error;
        /* Built even for records before min_offset: their header keys must still be valid UTF-8. */
        PyObject *headers = read_headers(&r);
        if (headers == NULL)
            goto error;
        if (r.pos != r.end) {
            Py_DECREF(headers);
            PyErr_SetString(DecodeError, "record length does not match its fields");
            goto error;
        }
        if (!offset_at_least(base_offset, off_delta, min_offset)) {
            Py_DECREF(headers);
            continue;
        }

        PyObject *fields[N_FIELDS];
        fields[0] = Py_NewRef(topic);
        fields[1] = Py_NewRef(partition);
        fields[2] = add_as_int(base_offset, off_delta);
        fields[3] = log_append ? Py_NewRef(max_ts) : add_as_int(base_ts, ts_delta);
        fields[4] = bytes_or_none(key_data, key_len);
        fields[5] = bytes_or_none(value_data, value_len);
        fields[6] = headers;
        fields[7] = Py_NewRef(ts_type);
        if (fields[2] == NULL || fields[3] == NULL || fields[4] == NULL || fields[5] == NULL) {
            for (int f = 0; f < N_FIELDS; f++)
                Py_XDECREF(fields[f]);
            goto error;
        }
        PyObject *record = make_record(&maker, fields);
        if (record == NULL)
            goto error;
        int appended;
        if (append == NULL) {
            appended = PyList_Append(out, record);
        }
        else {
            PyObject *res = PyObject_CallOneArg(append, record);
            appended = res == NULL ? -1 : 0;
            Py_XDECREF(res);
        }
        Py_DECREF(record);
        if (appended < 0)
            goto error;
    }
    if (r.pos != size) {
        PyErr_Format(DecodeError, "%zd bytes left after the last record of a batch", size - r.pos);
        goto error;
    }
    PyBuffer_Release(&view);
    Py_XDECREF(append);
    Py_DECREF(ts_type);
    Py_RETURN_NONE;

error:
    PyBuffer_Release(&view);
    Py_XDECREF(append);
    Py_DECREF(ts_type);
    return NULL;
}

static PyMethodDef records_methods[] = {
    {"decode_records", (PyCFunction)(void (*)(void))decode_records, METH_FASTCALL, decode_records_doc},
    {NULL, NULL, 0, NULL},
};

static void
records_free(void *module)
{
    Py_CLEAR(cached_maker.cls);
    Py_CLEAR(DecodeError);
}

static struct PyModuleDef records_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kafkalite_client._records",
    .m_doc = "Kafka v2 record decoding in C for the consumer (see fetched.py).",
    .m_size = -1,
    .m_methods = records_methods,
    .m_free = records_free,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    PyObject *errors = PyImport_ImportModule("kafkalite.protocol.errors");
    if (errors == NULL)
        return NULL;
    Py_XSETREF(DecodeError, PyObject_GetAttrString(errors, "DecodeError"));
    Py_DECREF(errors);
    if (DecodeError == NULL)
        return NULL;
    return PyModule_Create(&records_module);
}
