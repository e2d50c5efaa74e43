/*
 * Safe XML parsing for SAML: every document we read ourselves (inbound messages before lasso, metadata) goes
 * through saml_xml_parse, which never touches the network, never substitutes entities or loads a DTD, and
 * refuses any DOCTYPE outright (XXE, billion laughs, and DTD-declared ID attributes that enable wrapping).
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "saml/internal.h"

#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

/* libxml2 reports a DOCTYPE only after parsing it; refuse any "<!DOCTYPE" before that happens at all. */
static int mentions_doctype(const char *buf, size_t len)
{
    static const char needle[] = "<!DOCTYPE";
    for (size_t i = 0; i + sizeof(needle) - 1 <= len; ++i)
        if (buf[i] == '<' && strncasecmp(buf + i, needle, sizeof(needle) - 1) == 0)
            return 1;
    return 0;
}

xmlDocPtr saml_xml_parse(const char *buf, size_t len, const char **reason)
{
    if (len > (size_t)INT32_MAX) {
        *reason = "too_large";
        return NULL;
    }
    if (mentions_doctype(buf, len)) {
        *reason = "doctype";
        return NULL;
    }
    xmlDocPtr doc = xmlReadMemory(buf, (int)len, "saml.xml", NULL, PARSE_OPTIONS);
    if (doc == NULL || xmlDocGetRootElement(doc) == NULL) {
        xmlFreeDoc(doc);
        *reason = "not_xml";
        return NULL;
    }
    if (doc->intSubset != NULL || doc->extSubset != NULL) { /* belt and braces */
        xmlFreeDoc(doc);
        *reason = "doctype";
        return NULL;
    }
    return doc;
}

char *saml_xml_attr(xmlNodePtr n, const char *name)
{
    return (char *)xmlGetProp(n, (const xmlChar *)name);
}

char *saml_xml_escape(const char *s)
{
    size_t len = 0;
    for (const char *p = s; *p != '\0'; ++p)
        len += strchr("<>&\"'", *p) != NULL ? 6 : 1;
    char *out = malloc(len + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const char *p = s; *p != '\0'; ++p) {
        const char *rep = *p == '<'    ? "&lt;"
                          : *p == '>'  ? "&gt;"
                          : *p == '&'  ? "&amp;"
                          : *p == '"'  ? "&quot;"
                          : *p == '\'' ? "&#39;"
                                       : NULL;
        if (rep != NULL) {
            memcpy(o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

int saml_xml_is(xmlNodePtr n, const char *ns, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL && strcmp((const char *)n->ns->href, ns) == 0 &&
           strcmp((const char *)n->name, name) == 0;
}

xmlNodePtr saml_xml_child(xmlNodePtr parent, const char *ns, const char *name)
{
    for (xmlNodePtr c = parent != NULL ? parent->children : NULL; c != NULL; c = c->next)
        if (saml_xml_is(c, ns, name))
            return c;
    return NULL;
}
