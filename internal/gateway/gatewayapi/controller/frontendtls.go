package controller

import (
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// frontendCAInformer watches the ConfigMaps Gateways' spec.tls.frontend
// caCertificateRefs name (gatewayapi Input.FrontendCAs) and sets
// c.frontendCAs to read them from its cache.
func (c *Controller) frontendCAInformer() cache.SharedIndexInformer {
	core := c.opts.Client.Core
	inf := kubeshared.NewInformer(&corev1.ConfigMap{}, c.opts.Client, core.ConfigMaps("").List, core.ConfigMaps("").Watch)
	l := listerscorev1.NewConfigMapLister(inf.GetIndexer())
	c.frontendCAs = func(ns, name string) *corev1.ConfigMap { m, _ := l.ConfigMaps(ns).Get(name); return m }
	return inf
}

// tlsPorts are the translation's tls.ports with their CA files in the
// secret directory.
func (c *Controller) tlsPorts(ports []config.TLSPort) []config.TLSPort {
	out := slices.Clone(ports)
	for i := range out {
		if a := out[i].ClientAuth; a != nil {
			ca := *a
			if !filepath.IsAbs(ca.CAFile) {
				ca.CAFile = filepath.Join(c.opts.SecretDir, filepath.FromSlash(ca.CAFile))
			}
			out[i].ClientAuth = &ca
		}
	}
	return out
}
