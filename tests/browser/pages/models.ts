/** Mounts the models panel alone (tests/browser/pages/models.html). */
import { mount } from 'svelte';
import ModelsPanel from '../../../src/ui/components/ModelsPanel.svelte';
import '../../../src/ui/app.css';

mount(ModelsPanel, { target: document.getElementById('app')! });
(window as unknown as { panelReady: boolean }).panelReady = true;
